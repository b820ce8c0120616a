"""The event bus: one port (`Bus`), two adapters (`KafkaBus`, `LocalBus`).

The domain talks only to the port; which adapter runs is configuration (see `open_bus`).
"""

from dispatch.bus.port import Bus, Consumer, Message, Record
from dispatch.bus.topics import Topics

__all__ = ["Bus", "Consumer", "Message", "Record", "Topics"]
