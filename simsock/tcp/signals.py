"""Edge signals a TCP object raises for its file (``take_signals()``), beside poll()'s levels.

SIG_DATA  sk_data_ready: new bytes (or EOF) became readable.
SIG_SPACE sk_stream_write_space: a writer that ran out of space (SOCK_NOSPACE) may write
          again: free space >= half of what is queued.
SIG_STATE sk_state_change / sk_error_report: connected, closed, reset, error pending.
SIG_ACCEPT a listener's accept queue gained a connection.
"""

SIG_DATA = 1
SIG_SPACE = 2
SIG_STATE = 4
SIG_ACCEPT = 8
