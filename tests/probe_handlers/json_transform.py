from handlers.json_transform import handle

__all__ = ["handle"]
