"""An example job module: `competitor_analysis`, written the way your own job types are.

Run a server with it:

    PYTHONPATH=examples jobctl server run --functions competitor_jobs
    jobctl submit --type competitor_analysis --input '{"company": "Acme", "reviews": 40}' --watch

Or ship it in a package and declare it, so `jobctl server run` loads it by itself:

    [project.entry-points."jobctl.functions"]
    competitor = "mypkg.competitor_jobs"

Every `ctx.step.run` result is stored before the next step starts: if the server
is killed halfway, the job resumes after the last completed step and nothing
already done runs again. Code outside steps runs again on every replay, so keep
it cheap and free of side effects.
"""

from __future__ import annotations

import hashlib
from typing import Any

from jobctl.server import JobContext, NonRetriableError, RetryAfterError, registry


def _fake_reviews(company: str, count: int) -> list[dict[str, Any]]:
    """Stands in for a scraper or an API call (deterministic, offline)."""
    reviews = []
    for i in range(count):
        digest = hashlib.sha1(f"{company}:{i}".encode()).digest()
        reviews.append({"stars": 1 + digest[0] % 5, "mentions_price": digest[1] % 3 == 0})
    return reviews


async def _notify_failure(ctx: JobContext, error: str) -> None:
    # on_failure runs once when the job has failed for good: page someone, clean up.
    ctx.log(f"competitor analysis for {ctx.input.get('company')!r} failed: {error}", "error")


@registry.job(
    "competitor_analysis",
    description="Gather a competitor's reviews and summarise them",
    retries=3,
    timeout=300,
    on_failure=_notify_failure,
    input_schema={
        "type": "object",
        "properties": {
            "company": {"type": "string"},
            "reviews": {"type": "integer"},
            "rate_limited_once": {"type": "boolean"},
        },
        "required": ["company"],
    },
)
async def competitor_analysis(ctx: JobContext) -> dict[str, Any]:
    company = ctx.input["company"].strip()
    if not company:
        raise NonRetriableError("input.company must not be empty")  # no point retrying
    count = int(ctx.input.get("reviews", 25))

    await ctx.progress(10, "Gathering reviews...")

    def gather() -> list[dict[str, Any]]:
        # A real scraper would raise RetryAfterError when the site says "slow down":
        if ctx.input.get("rate_limited_once") and ctx.step.attempt == 1:
            raise RetryAfterError("the review site asked us to slow down", retry_after=0.5)
        return _fake_reviews(company, count)

    reviews = await ctx.step.run("gather-reviews", gather)
    ctx.log(f"gathered {len(reviews)} reviews of {company}")

    await ctx.progress(60, "Summarising...")
    summary = await ctx.step.run(
        "summarise",
        lambda: {
            "average_stars": round(sum(r["stars"] for r in reviews) / max(len(reviews), 1), 2),
            "price_complaints": sum(r["mentions_price"] for r in reviews),
        },
    )

    await ctx.step.sleep("cool-down", 0.2)  # durable: survives a restart
    await ctx.progress(100, f"{company}: {summary['average_stars']} stars on average")
    return {"company": company, "reviews": len(reviews), **summary}
