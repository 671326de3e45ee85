"""A drop-in plugin: one function for two hooks."""

import re

from interlock import Modify, hook

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@hook("message_received", "message_sending")
def redact_email(payload, ctx):
    text = EMAIL.sub("[email]", payload.content)
    if text != payload.content:
        return Modify(payload.replace(content=text))
    return None
