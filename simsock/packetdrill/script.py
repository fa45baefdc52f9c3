"""The packetdrill script language: a tokenizer and a recursive-descent parser.

Written from the grammar of packetdrill's ``parser.y`` and the tokens of its ``lexer.l``
(the reference for what is legal); the result is plain data (:class:`Script` with its
:class:`Event` list) that :mod:`simsock.packetdrill.runner` executes. What the grammar
allows but the runner does not model (UDP/ICMP packets, GRE/MPLS encapsulation, IPv6, ...)
is still parsed, so that the runner can fail with the construct named.

Times are integer microseconds, as packetdrill keeps them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class ScriptError(Exception):
    """A script that packetdrill's grammar does not accept (with its line number)."""

    def __init__(self, path: str, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line, self.message = path, line, message


# --------------------------------------------------------------------------- tokens
@dataclass(slots=True)
class Tok:
    kind: str        # INT FLOAT HEX WORD STRING BACKQUOTE CODE OPTION IPV4 IPV6 ELLIPSIS PUNCT EOF
    value: object
    line: int
    text: str = ""

    def is_(self, kind: str, value=None) -> bool:
        return self.kind == kind and (value is None or self.value == value)


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<cpp>//[^\n]*)
  | (?P<c>/\*(?:[^*]|\*(?!/))*\*/)
  | (?P<code>%\{(?:[^}]|\}(?!%))*\}%)
  | (?P<ipv4>[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+)
  | (?P<ellipsis>\.\.\.)
  | (?P<option>--[A-Za-z0-9_]+)
  | (?P<hex>0x[0-9a-fA-F]+)
  | (?P<float>-?[0-9]*\.[0-9]+)
  | (?P<int>-?[0-9]+(?![A-Za-z_]))
  | (?P<word>[A-Za-z0-9_]+)
  | (?P<string>"(?:\\.|[^"\\])*")
  | (?P<backquote>`(?:\\.|[^`\\])*`)
  | (?P<punct>[^ \t\r\n])
""", re.VERBOSE | re.DOTALL)


#: regex group -> (token kind, the token's value from its text); whitespace and comments
#: make no token
_TOKEN_VALUE = {
    "code": ("CODE", lambda s: s[2:-2]),
    "ipv4": ("IPV4", str),
    "ellipsis": ("ELLIPSIS", str),
    "hex": ("HEX", lambda s: int(s, 16)),
    "float": ("FLOAT", str),
    "int": ("INT", int),
    "word": ("WORD", str),
    "string": ("STRING", lambda s: bytes(s[1:-1], "utf-8").decode("unicode_escape")),
    "backquote": ("BACKQUOTE", lambda s: s[1:-1]),
    "punct": ("PUNCT", str),
}


def tokenize(text: str, path: str = "<script>") -> list[Tok]:
    toks: list[Tok] = []
    pos, line = 0, 1
    n = len(text)
    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:      # pragma: no cover - the punct alternative matches anything
            raise ScriptError(path, line, f"cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        s = m.group()
        if kind == "option":
            # --name=value: the value runs to the end of the line (packetdrill's option())
            end = text.find("\n", pos)
            end = n if end < 0 else end
            s = text[pos:end].rstrip()
            name, _, value = s[2:].partition("=")
            toks.append(Tok("OPTION", (name, value if "=" in s else None), line, s))
            pos = end
            continue
        if kind not in ("ws", "cpp", "c"):
            tok_kind, value = _TOKEN_VALUE[kind]
            toks.append(Tok(tok_kind, value(s), line, s))
        line += s.count("\n")
        pos = m.end()
    toks.append(Tok("EOF", None, line, "end of file"))
    return toks


# --------------------------------------------------------------------------- script data
@dataclass
class TcpOption:
    kind: str                   # nop eol mss wscale sackOK sack TS md5 FO FOEXP
    value: object = None        # mss/wscale int; sack: list of (start, end); TS: (val, ecr)


@dataclass
class PacketSpec:
    direction: str              # "<" inbound (injected) or ">" outbound (expected)
    protocol: str = "tcp"       # tcp (udp/icmp are parsed, not run)
    flags: str = ""             # letters as written: S F R P . E W C U
    seq_start: int = 0
    seq_end: int = 0
    length: int = 0
    ack: int | None = None
    window: int | None = None
    urg: int | None = None
    options: list[TcpOption] | None = None   # None: no option list; see options_any
    options_any: bool = False   # <...>: options not checked
    ecn: str | None = None      # ip info: noecn ect0 ect1 ce ect01
    ip_info: str | None = None  # anything else in (…)/[…] (tos, ttl, flowlabel)
    encap: list[str] = field(default_factory=list)   # ipv4/ipv6/gre/mpls prefixes
    ports: tuple[int, int] | None = None
    text: str = ""


@dataclass
class Expr:
    """A syscall argument or return value, by what the grammar calls it."""
    kind: str     # ellipsis int word string list brace binor assign call null
    value: object = None
    items: list = field(default_factory=list)
    name: str = ""

    def __repr__(self) -> str:
        return expr_text(self)


def expr_text(e: Expr) -> str:
    k = e.kind
    if k == "ellipsis":
        return "..."
    if k == "int":
        return str(e.value)
    if k == "word":
        return str(e.value)
    if k == "string":
        return '"' + str(e.value) + '"'
    if k == "list":
        return "[" + ", ".join(expr_text(i) for i in e.items) + "]"
    if k == "brace":
        return "{" + ", ".join(expr_text(i) for i in e.items) + "}"
    if k == "binor":
        return "|".join(expr_text(i) for i in e.items)
    if k == "assign":
        return f"{e.name}={expr_text(e.items[0])}"
    if k == "call":
        return f"{e.name}(" + ", ".join(expr_text(i) for i in e.items[:-1]) + ")=" + expr_text(e.items[-1])
    if k == "func":
        return f"{e.name}(" + ", ".join(expr_text(i) for i in e.items) + ")"
    return f"<{k}>"


@dataclass
class SyscallSpec:
    name: str
    args: list[Expr]
    result: Expr
    errno: str | None = None
    note: str | None = None
    end_us: int | None = None   # "...END": a blocking call, returning by END
    text: str = ""


@dataclass
class Event:
    line: int
    kind: str                   # packet syscall command code
    time_type: str              # absolute relative any absolute_range relative_range
    time_us: int = 0
    time_end_us: int = 0
    packet: PacketSpec | None = None
    syscall: SyscallSpec | None = None
    command: str | None = None
    code: str | None = None


@dataclass
class Script:
    path: str
    options: dict[str, str | None]
    events: list[Event]
    init_command: str | None = None
    cleanup_command: str | None = None


# --------------------------------------------------------------------------- parser
_TCP_FLAG_LETTERS = set("SFRP.EWCUA")


def _time_us(tok: Tok) -> int:
    """packetdrill's time: seconds as INTEGER or FLOAT, kept as microseconds."""
    if tok.kind == "INT":
        return tok.value * 1_000_000
    s = tok.value
    neg = s.startswith("-")
    s = s.lstrip("-")
    whole, _, frac = s.partition(".")
    us = int(whole or 0) * 1_000_000 + int((frac + "000000")[:6] or 0)
    if len(frac) > 6 and int(frac[6]) >= 5:
        us += 1
    return -us if neg else us


class Parser:
    def __init__(self, text: str, path: str = "<script>"):
        self.path = path
        self.toks = tokenize(text, path)
        self.i = 0

    # -- token helpers
    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def error(self, message: str, tok: Tok | None = None):
        tok = tok or self.tok
        return ScriptError(self.path, tok.line, f"{message} (at {tok.text!r})")

    def punct(self, p: str) -> bool:
        return self.tok.kind == "PUNCT" and self.tok.value == p

    def expect_punct(self, p: str) -> Tok:
        if not self.punct(p):
            raise self.error(f"syntax error: expected {p!r}")
        return self.next()

    def word(self, w: str | None = None) -> bool:
        return self.tok.kind == "WORD" and (w is None or self.tok.value == w)

    def expect_int(self, what: str) -> int:
        t = self.tok
        if t.kind not in ("INT", "HEX"):
            raise self.error(f"syntax error: expected an integer for {what}")
        self.next()
        return t.value

    # -- script
    def parse(self) -> Script:
        options: dict[str, str | None] = {}
        while self.tok.kind == "OPTION":
            name, value = self.next().value
            options[name] = value
        init = None
        if self.tok.kind == "BACKQUOTE":
            init = self.next().value
        events: list[Event] = []
        cleanup = None
        while self.tok.kind != "EOF":
            if self.tok.kind == "BACKQUOTE" and self.peek().kind == "EOF":
                cleanup = self.next().value
                break
            events.append(self.event())
        if not events:
            raise self.error("syntax error: a script needs at least one event")
        return Script(self.path, options, events, init, cleanup)

    def time(self) -> int:
        t = self.tok
        if t.kind not in ("INT", "FLOAT"):
            raise self.error("syntax error: expected a time")
        self.next()
        return _time_us(t)

    def event(self) -> Event:
        line = self.tok.line
        ev = Event(line=line, kind="", time_type="absolute")
        if self.punct("*"):
            self.next()
            ev.time_type = "any"
        elif self.punct("+"):
            self.next()
            ev.time_us = self.time()
            ev.time_type = "relative"
            if self.punct("~"):
                self.next()
                self.expect_punct("+")
                ev.time_end_us = self.time()
                ev.time_type = "relative_range"
        else:
            ev.time_us = self.time()
            if self.punct("~"):
                self.next()
                ev.time_end_us = self.time()
                ev.time_type = "absolute_range"
        t = self.tok
        if t.kind == "PUNCT" and t.value in "<>":
            ev.kind = "packet"
            ev.packet = self.packet()
        elif t.kind == "BACKQUOTE":
            ev.kind = "command"
            ev.command = self.next().value
        elif t.kind == "CODE":
            ev.kind = "code"
            ev.code = self.next().value
        elif t.kind in ("ELLIPSIS", "WORD"):
            ev.kind = "syscall"
            ev.syscall = self.syscall()
        else:
            raise self.error("syntax error: expected a packet, a system call, a command or a code block")
        if ev.kind not in ("syscall", "packet") and ev.time_type in ("absolute_range", "relative_range"):
            raise ScriptError(self.path, line, "a time range (~) is only allowed for packets")
        return ev

    # -- packets
    def ip_info(self) -> tuple[str | None, str | None]:
        close = "]" if self.punct("[") else ")"
        self.next()
        words = []
        while not self.punct(close):
            if self.tok.kind == "EOF":
                raise self.error("syntax error: unterminated IP info")
            words.append(self.next().text)
        self.next()
        ecn = None
        if words and words[0] in ("noecn", "ect0", "ect1", "ce", "ect01"):
            ecn = words[0]
            rest = words[1:]
        else:
            rest = words
        return ecn, (" ".join(rest) if rest else None)

    def packet(self) -> PacketSpec:
        start = self.i
        p = PacketSpec(direction=self.next().value)
        self.packet_prefix(p)
        if self.word("udp") or self.word("icmp"):
            self.other_packet(p)
        else:
            self.tcp_packet(p)
        p.text = self._text(start)
        return p

    def packet_prefix(self, p: PacketSpec) -> None:
        """Encapsulations (``ipv4 A > B:``, ``gre ...:``, ``mpls ...:``) and the IP info."""
        while self.word("ipv4") or self.word("ipv6") or self.word("gre") or self.word("GREv0") \
                or self.word("mpls"):
            w = self.next().value
            depth = 0
            while not (depth == 0 and self.punct(":")):
                if self.tok.kind == "EOF":
                    raise self.error("syntax error: unterminated encapsulation prefix")
                if self.punct("(") or self.punct("["):
                    depth += 1
                elif self.punct(")") or self.punct("]"):
                    depth -= 1
                self.next()
            self.next()
            p.encap.append(w)
        if self.punct("(") or self.punct("["):
            p.ecn, p.ip_info = self.ip_info()

    def ports(self, p: PacketSpec) -> None:
        if self.tok.kind == "INT" and self.peek().is_("PUNCT", ">"):
            a = self.next().value
            self.next()
            p.ports = (a, self.expect_int("port"))

    def other_packet(self, p: PacketSpec) -> None:
        """A UDP packet (``udp (LEN)``) or an ICMP one (read to the next event)."""
        p.protocol = self.next().value
        if p.protocol == "udp":
            self.ports(p)
            self.expect_punct("(")
            p.length = self.expect_int("UDP payload length")
            self.expect_punct(")")
            return
        while self.tok.kind != "EOF" and not self._at_event_start():
            self.next()

    def tcp_packet(self, p: PacketSpec) -> None:
        self.ports(p)
        # flags: WORD | '.' | WORD '.' | '-'
        if self.punct("."):
            self.next()
            p.flags = "."
        elif self.punct("-"):
            self.next()
            p.flags = ""
        elif self.tok.kind == "WORD":
            w = self.next().value
            if not set(w) <= _TCP_FLAG_LETTERS:
                raise self.error(f"syntax error: bad TCP flags {w!r}", self.toks[self.i - 1])
            p.flags = w
            if self.punct("."):
                self.next()
                p.flags += "."
        else:
            raise self.error("syntax error: expected TCP flags")
        self.tcp_sequence(p)
        if self.word("ack"):
            self.next()
            p.ack = self.expect_int("ack")
        if self.word("win"):
            self.next()
            p.window = self.expect_int("window")
        if self.word("urg"):
            self.next()
            p.urg = self.expect_int("urgent pointer")
        if p.window is None and p.direction == "<":
            raise self.error("window must be specified for inbound packets")
        if self.punct("<"):
            self.next()
            if self.tok.kind == "ELLIPSIS":
                self.next()
                p.options_any = True
            else:
                p.options = self.tcp_options()
            self.expect_punct(">")

    def tcp_sequence(self, p: PacketSpec) -> None:
        """``START:END(LENGTH)``, checked as packetdrill checks it."""
        p.seq_start = self.expect_int("sequence number")
        self.expect_punct(":")
        p.seq_end = self.expect_int("sequence number")
        self.expect_punct("(")
        p.length = self.expect_int("payload length")
        self.expect_punct(")")
        if not (0 <= p.seq_start <= 0xFFFFFFFF and 0 <= p.seq_end <= 0xFFFFFFFF):
            raise self.error("TCP sequence number out of range")
        if not 0 <= p.length <= 0xFFFF:
            raise self.error("TCP payload size out of range")
        if p.seq_end != p.seq_start + p.length:
            raise self.error("inconsistent TCP sequence numbers and payload size")

    def _at_event_start(self) -> bool:
        t = self.tok
        return (t.kind in ("INT", "FLOAT") and t.line > self.toks[self.i - 1].line) or t.is_("PUNCT", "+") \
            or t.is_("PUNCT", "*")

    def tcp_options(self) -> list[TcpOption]:
        opts = [self.tcp_option()]
        while self.punct(","):
            self.next()
            opts.append(self.tcp_option())
        return opts

    def tcp_option(self) -> TcpOption:
        t = self.tok
        if t.kind != "WORD":
            raise self.error("syntax error: expected a TCP option")
        w = self.next().value
        if w in ("nop", "eol", "sackOK"):
            return TcpOption(w)
        if w in ("mss", "wscale"):
            return TcpOption(w, self.expect_int(w))
        if w == "sack":
            blocks = []
            while self.tok.kind == "INT" and self.peek().is_("PUNCT", ":"):
                a = self.next().value
                self.next()
                blocks.append((a, self.expect_int("SACK block end")))
            if not blocks:
                raise self.error("syntax error: sack needs blocks start:end")
            return TcpOption("sack", blocks)
        if w == "TS":
            if not self.word("val"):
                raise self.error("syntax error: expected TS val N ecr N")
            self.next()
            val = self.expect_int("TS val")
            if not self.word("ecr"):
                raise self.error("syntax error: expected ecr")
            self.next()
            return TcpOption("TS", (val, self.expect_int("TS ecr")))
        if w in ("FO", "FOEXP", "md5"):
            cookie = None
            if self.tok.kind in ("WORD", "INT", "HEX") and not self.punct(","):
                cookie = self.next().text
            return TcpOption(w, cookie)
        raise self.error(f"syntax error: unknown TCP option {w!r}", t)

    def _text(self, start: int) -> str:
        return " ".join(t.text for t in self.toks[start:self.i])

    # -- system calls
    def syscall(self) -> SyscallSpec:
        start = self.i
        end_us = None
        if self.tok.kind == "ELLIPSIS":
            self.next()
            end_us = self.time()
        if self.tok.kind != "WORD":
            raise self.error("syntax error: expected a system call name")
        name = self.next().value
        self.expect_punct("(")
        args: list[Expr] = []
        if not self.punct(")"):
            args = self.expr_list()
        self.expect_punct(")")
        self.expect_punct("=")
        result = self.expr()
        errno = note = None
        if self.tok.kind == "WORD" and self.tok.line == self.toks[self.i - 1].line:
            errno = self.next().value
        if self.punct("("):
            note = self.note()
        return SyscallSpec(name, args, result, errno, note, end_us, self._text(start))

    def note(self) -> str:
        self.expect_punct("(")
        depth, words = 1, []
        while True:
            t = self.tok
            if t.kind == "EOF":
                raise self.error("syntax error: unterminated note")
            self.next()
            if t.is_("PUNCT", "("):
                depth += 1
            elif t.is_("PUNCT", ")"):
                depth -= 1
                if depth == 0:
                    return " ".join(words)
            words.append(t.text)

    def expr_list(self) -> list[Expr]:
        items = [self.expr()]
        while self.punct(","):
            self.next()
            items.append(self.expr())
        return items

    def expr(self) -> Expr:
        e = self.primary()
        if self.punct("|"):
            items = [e]
            while self.punct("|"):
                self.next()
                items.append(self.primary())
            e = Expr("binor", items=items)
        return e

    def primary(self) -> Expr:
        t = self.tok
        if t.kind == "ELLIPSIS":
            self.next()
            return Expr("ellipsis")
        if t.kind in ("INT", "HEX"):
            self.next()
            return Expr("int", t.value)
        if t.kind == "PUNCT" and t.value == "-" and self.peek().kind in ("INT", "HEX"):
            self.next()
            return Expr("int", -self.next().value)
        if t.kind == "STRING":
            self.next()
            if self.tok.kind == "ELLIPSIS":
                self.next()
                return Expr("string", t.value, name="prefix")
            return Expr("string", t.value)
        if t.kind == "WORD":
            self.next()
            if self.punct("="):
                self.next()
                return Expr("assign", items=[self.expr()], name=t.value)
            if self.punct("("):
                # inet_addr("..."), htons(N), msg_name(...)=..., msg_iov(N)=[...]
                self.next()
                inner = [] if self.punct(")") else self.expr_list()
                self.expect_punct(")")
                if self.punct("="):
                    self.next()
                    return Expr("call", items=inner + [self.expr()], name=t.value)
                return Expr("func", items=inner, name=t.value)
            return Expr("word", t.value)
        if t.kind == "PUNCT" and t.value == "[":
            self.next()
            items = [] if self.punct("]") else self.expr_list()
            self.expect_punct("]")
            return Expr("list", items=items)
        if t.kind == "PUNCT" and t.value == "{":
            self.next()
            items = [] if self.punct("}") else self.expr_list()
            self.expect_punct("}")
            return Expr("brace", items=items)
        raise self.error("syntax error: expected an expression")


def parse(text: str, path: str = "<script>") -> Script:
    """Parse a packetdrill script; raises :class:`ScriptError` (with the line) if it is not legal."""
    return Parser(text, path).parse()


def parse_file(path: str) -> Script:
    with open(path, encoding="utf-8") as f:
        return parse(f.read(), path)
