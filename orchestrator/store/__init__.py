"""The campaign store: tables, migrations, the store itself, export and bundles. Plain SQLAlchemy, no Prefect or torch."""
