"""Everything that talks to a Prefect server: the flow, approval pauses, instrument locks, artifacts, serving, the dashboard and the temporary server. The only package that imports prefect."""
