"""Storage: SQLAlchemy 2 models, engine/session set-up and Alembic migrations."""

from consentry.db.session import Database, make_engine

__all__ = ["Database", "make_engine"]


def open_database(settings=None, upgrade: bool = True) -> Database:
    """The database named by the settings (``DATABASE_URL`` or SQLite under CONSENTRY_HOME),
    migrated to the latest schema unless ``upgrade`` is false."""
    from consentry.config import get_settings

    settings = settings or get_settings()
    db = Database(settings.effective_database_url)
    if upgrade:
        db.upgrade()
    return db


__all__ += ["open_database"]
