"""Edge signals: what just happened to a file, as one bit set shared by every layer.

A protocol object raises them (the sans-IO TCP in ``simsock/tcp`` through
``take_signals()``, the kernel's UDP and TCP sockets directly) and the kernel hands them to
the file's watchers beside the file's current readiness mask: a wait queue, select/poll,
epoll. They say which wake-up Linux would issue, not whether the file is ready now.

SIG_IN     sk_data_ready: new bytes, a datagram, EOF, or (on a listener) a connection in the
           accept queue.
SIG_OUT    sk_write_space / sk_stream_write_space: a writer that ran out of space may write
           again (for TCP: free space >= half of what is queued, SOCK_NOSPACE set).
SIG_STATE  sk_state_change / sk_error_report: connected, closed, reset, error pending. A
           state change wakes every waiter whatever it waits for (its poll key is 0).
SIG_CLOSE  the file is released (its last reference closed): epoll drops its entries.
"""

SIG_IN = 0x1
SIG_OUT = 0x2
SIG_STATE = 0x4
SIG_CLOSE = 0x8
