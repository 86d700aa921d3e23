from handlers.echo import handle

__all__ = ["handle"]
