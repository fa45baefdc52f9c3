"""Sans-IO TCP with Linux's semantics: see connection.py for the model and its sources."""

from simsock.tcp.config import TcpConfig
from simsock.tcp.connection import TcpConnection
from simsock.tcp.listener import TcpListener, reset_for
from simsock.signals import SIG_IN, SIG_OUT, SIG_STATE

__all__ = ["TcpConfig", "TcpConnection", "TcpListener", "reset_for",
           "SIG_IN", "SIG_OUT", "SIG_STATE"]
