"""simsock: a deterministic discrete-event simulator of how operating systems handle sockets.

Programs are ``async def prog(k, ...)`` written like code for the ``socket`` and ``select``
modules; the same program runs on the simulated kernel (:class:`Simulation`) and on real
sockets (:mod:`simsock.real`).
"""

from .constants import *  # noqa: F401,F403  (socket/select constants with Linux values)
from .errors import SimulationError
from .kernel.socket import Socket
from .kernel.udp import UdpSocket
from .kernel.tcp_socket import TcpSocket
from .profiles import Profile, get_profile
from .sim import Simulation
from .net.router import Router
from .net.qdisc import CoDel, DropTail, Qdisc, RED
from .net.tbf import TBF
from .net.monitor import NetworkMonitor
from . import topology
from .trace import Trace
from .units import parse_rate, parse_size, parse_time

__version__ = "0.1.0"

__all__ = ["Simulation", "SimulationError", "Socket", "UdpSocket", "TcpSocket", "Profile", "get_profile", "Trace",
           "Router", "DropTail", "RED", "CoDel", "TBF", "Qdisc", "NetworkMonitor", "topology",
           "parse_time", "parse_rate", "parse_size", "__version__"]

from . import constants as _constants  # noqa: E402

# `from simsock import *` gives the socket/select constants too, as `from socket import *` does.
__all__ += [name for name in dir(_constants) if name.isupper()]
