"""The reference worker: an aiohttp service that owns isolated workspaces and runs Python in them."""
