from handlers.whoami import handle

__all__ = ["handle"]
