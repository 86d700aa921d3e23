from handlers.compute import handle

__all__ = ["handle"]
