"""How jobctl reaches jobs, with no UI: the job API over HTTP (sync and async clients),
a Supabase project's jobs table, the live feed (Realtime, then polling), the UI-free
watch loop and the local server launcher. Nothing here imports Typer, Rich or Textual,
the commands or the dashboard (import-linter contracts in pyproject.toml)."""
