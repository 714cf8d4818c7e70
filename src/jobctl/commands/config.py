"""`jobctl config show|get|set|unset|path`: layered settings and profiles."""

from __future__ import annotations

from typing import Annotated

import typer

from jobctl import paths
from jobctl.commands._shared import JsonOption, get_ctx
from jobctl.commands.config_detect import detect
from jobctl.commands.context import Context
from jobctl.config import (
    KEYS,
    SECRET_KEYS,
    Settings,
    file_profile,
    load_settings,
    mask,
    read_file,
    set_value,
    unset_value,
)
from jobctl.errors import ExitCode, UsageError

app = typer.Typer(
    help="Show and change settings (flags > JOBCTL_* environment > config file > defaults).",
    no_args_is_help=True,
)
CONFIG_FIELDS = ("profile", "profiles", "config_file", "data_dir", "values", "sources")


def _settings(ctx: Context) -> Settings:
    # Config commands may name a profile that does not exist yet (to create it).
    return load_settings(ctx.env, ctx.flags, check_profile=False)


def _shown(key: str, value: object) -> str:
    if key in SECRET_KEYS:
        return mask(str(value)) if value else "(none)"
    return (
        "(none)" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def run_show(ctx: Context, json_fields: str | None) -> int:
    from jobctl.commands import render

    s = _settings(ctx)
    if json_fields is not None:
        data = {
            "profile": s.profile,
            "profiles": list(s.known_profiles),
            "config_file": str(s.config_path),
            "data_dir": str(s.data_dir),
            "values": {k: (mask(v) if k in SECRET_KEYS and v else v) for k, v in s.values.items()},
            "sources": s.sources,
        }
        ctx.out(
            render.to_json(render.select(data, render.parse_fields(json_fields, CONFIG_FIELDS)))
        )
        return ExitCode.OK
    rows = [[k, _shown(k, s.values[k]), s.sources[k]] for k in KEYS]
    ctx.out(render.table(["KEY", "VALUE", "SOURCE"], rows))
    ctx.out(
        f"\nprofiles: {', '.join(s.known_profiles)}\nconfig file: {s.config_path}\n"
        f"data dir: {s.data_dir}"
    )
    return ExitCode.OK


@app.command("show")
def show(typer_ctx: typer.Context, json_fields: JsonOption = None) -> None:
    """Every setting of the active profile, its value and where it came from."""
    raise typer.Exit(run_show(get_ctx(typer_ctx), json_fields))


@app.command("get")
def get(
    typer_ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A setting name (see `config show`).")],
) -> None:
    """Print one setting's effective value (secrets masked: use `auth token`)."""
    ctx = get_ctx(typer_ctx)
    if key not in KEYS:
        raise UsageError(f"unknown config key {key!r} (known: {', '.join(KEYS)})")
    value = _settings(ctx).values[key]
    if value is None:
        raise typer.Exit(ExitCode.NOT_FOUND)
    ctx.out(_shown(key, value))


@app.command("set")
def set_(
    typer_ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A setting name (see `config show`).")],
    value: Annotated[str, typer.Argument(help="The new value.")],
) -> None:
    """Set a value in the config file: api_url and supabase_* go to the active profile
    (or --profile NAME, which creates it); other keys apply to all profiles unless
    --profile is given.

    Example: jobctl config set api_url https://jobs.example.com --profile staging
    """
    ctx = get_ctx(typer_ctx)
    if key == "token":
        raise UsageError("tokens are set with `jobctl auth login` (it keeps them out of argv)")
    profile = ctx.flags.get("profile")
    if profile is None and KEYS.get(key, (None, "", False))[2]:
        profile = _active_profile(ctx)
    path, where = set_value(key, value, profile)
    ctx.info(f"set {key} ({where}) in {path}")


@app.command("unset")
def unset(
    typer_ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="A setting name.")],
) -> None:
    """Remove a key from the config file: from the active profile (or --profile NAME) if set
    there, else from the top level."""
    ctx = get_ctx(typer_ctx)
    profile = _active_profile(ctx)
    if not unset_value(key, profile):
        raise UsageError(f"{key} is not set in the config file (profile {profile!r} or top level)")
    ctx.info(f"removed {key} from the config file")


@app.command("path")
def path(typer_ctx: typer.Context) -> None:
    """Print the config file's path (even when the file cannot be read)."""
    ctx = get_ctx(typer_ctx)
    ctx.out(str(paths.config_file()))


def _active_profile(ctx: Context) -> str:
    """The profile to write to, read without checking the rest of the file: `set` and
    `unset` are how a wrong value in it gets fixed."""
    return file_profile(ctx.env, ctx.flags, read_file(paths.config_file()))


app.command("detect")(detect)
