"""The real backend: the same programs on the host's real sockets and threads.

``RealWorld`` mirrors :class:`simsock.Simulation`'s world-building calls; each program gets a
kernel handle ``k`` whose sockets are real ones, and every call it makes is recorded in the
simulator's trace format, so that :mod:`simsock.compare` can hold a simulated run against a
real one. ``RealWorld(namespaces=True)`` makes every host a network namespace and links
rate-limited veth pairs (root only; :func:`namespaces_available` says whether it can run).
"""

from simsock.real.kernel import RealEpoll, RealKernel, RealPoll, ThreadHandle
from simsock.real.netns import cleanup_stale_namespaces, namespaces_available
from simsock.real.sockets import RealSocket
from simsock.real.world import RealHost, RealWorld

__all__ = [
    "RealWorld", "RealHost", "RealKernel", "RealSocket", "RealPoll", "RealEpoll", "ThreadHandle",
    "namespaces_available", "cleanup_stale_namespaces",
]
