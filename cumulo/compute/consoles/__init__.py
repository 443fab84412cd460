"""Remote consoles: the tokens that console URLs carry (``tokens``) and the proxies that take
them (``proxy``: the serial console over a websocket, VNC for noVNC clients)."""
