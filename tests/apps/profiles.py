"""The two apps' profiles as README documents them, for the tests to write into the config
dir (with the URLs of the test's servers)."""

from __future__ import annotations

from pathlib import Path

JOURNAL = """\
[app]
api_url = "{api_url}"
supabase_url = "{supabase_url}"
supabase_anon_key = "{anon_key}"
type = "journal_extraction"

[table]
name = "jobs"
id = "id"
status = "status"
error = "error_message"
result = "result_summary"
created_at = "created_at"
updated_at = "updated_at"
owner = "user_id"

[status]
pending = ["pending"]
running = ["processing"]
completed = ["completed"]
failed = ["failed"]

[submit]
method = "POST"
path = "/api/journal/submit"
body = {{ eventText = "{{text}}", referenceDate = "{{reference_date}}" }}
job_id = "jobId"

[job]
summary = "{{result.events_created}} events extracted"
"""

DECISION = """\
[app]
api_url = "{api_url}"
supabase_url = "{supabase_url}"
supabase_anon_key = "{anon_key}"
type = "competitor_analysis"

[table]
name = "jobs"
id = "id"
status = "status"
type = "type"
progress = "progress"
message = "output.status_message"
error = "error"
result = "output"
input = "input"
created_at = "created_at"
updated_at = "updated_at"
owner = "user_id"

[status]
pending = ["pending"]
running = ["processing", "running"]
completed = ["completed", "complete"]
failed = ["failed"]
cancelled = ["cancelled"]

[submit]
method = "POST"
path = "/api/jobs"
body = {{ type = "{{type}}", decision_id = "{{decision_id}}", input = "{{input}}" }}
job_id = "id"

[job]
url = "/api/jobs/{{id}}"

[types.competitor_analysis]
poll = 3
timeout = 120

[types.market_research]
poll = 3
timeout = 120

[types.brief_generation]
poll = 2
timeout = 60

[types.option_analysis]
poll = 2
timeout = 30
"""


def write_profile(
    config_dir: Path, name: str, template: str, *, api_url: str, supabase_url: str, anon_key: str
) -> Path:
    path = config_dir / "apps" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(template.format(api_url=api_url, supabase_url=supabase_url, anon_key=anon_key))
    return path
