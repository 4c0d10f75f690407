"""A program written against libmulticast's types. `mypy --strict` accepts it as it is
(scripts/test-python-packages), and refuses it with a wrong type added: Message is a
TypedDict, so ``data`` is bytes and ``source`` a str, not Any."""
from typing import FrozenSet, List, Optional

import libmulticast
from libmulticast import aio


def describe(message: libmulticast.Message) -> str:
    data: bytes = message["data"]
    source: str = message["source"]
    return f"{source}: {data.decode(errors='replace')}"


def first(group: libmulticast.Group) -> Optional[str]:
    message = group.receive(timeout=1.0)
    return None if message is None else describe(message)


async def first_async(group: aio.AsyncGroup) -> Optional[str]:
    """The same on asyncio: the types carry through libmulticast.aio."""
    message = await group.receive(timeout=1.0)
    async for later in group:
        return describe(later)
    return None if message is None else describe(message)


def main() -> None:
    with libmulticast.join("239.1.1.1", 9999) as group:
        group.send("hello")
        print(first(group))
        batch: List[libmulticast.Message] = group.receive_batch(timeout=0.1)
        print(len(batch))
    features: FrozenSet[str] = libmulticast.capabilities()
    print(libmulticast.version(), sorted(features))


if __name__ == "__main__":
    main()
