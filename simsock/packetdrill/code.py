"""``%{ ... }%`` blocks: assertions over ``tcp_info`` fields, evaluated without ``eval``.

packetdrill hands these blocks to Python with the socket's ``struct tcp_info`` fields as
variables (``tcpi_snd_cwnd``, ...). Upstream TCP scripts use them for ``assert`` statements
over arithmetic and comparisons; that subset is evaluated here by walking the syntax tree:
names (the tcp_info fields), numbers, arithmetic, comparisons (chained), ``and``/``or``/
``not``, and ``assert expr[, message]``. Anything else (calls, attributes, imports) is
refused with the construct named.
"""

from __future__ import annotations

import ast
import operator

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
        ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
        ast.LShift: operator.lshift, ast.RShift: operator.rshift}
_CMP = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
        ast.Gt: operator.gt, ast.GtE: operator.ge}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert}


class CodeError(Exception):
    pass


def _eval(node, env: dict):
    t = type(node)
    if t is ast.Constant and isinstance(node.value, (int, float, str)):
        return node.value
    if t is ast.Name:
        if node.id not in env:
            raise CodeError(f"name {node.id!r} is not a tcp_info field the simulator provides")
        return env[node.id]
    if t is ast.BinOp and type(node.op) in _BIN:
        return _BIN[type(node.op)](_eval(node.left, env), _eval(node.right, env))
    if t is ast.UnaryOp and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand, env))
    if t is ast.BoolOp:
        if isinstance(node.op, ast.And):
            v = True
            for x in node.values:
                v = _eval(x, env)
                if not v:
                    return v
            return v
        v = False
        for x in node.values:
            v = _eval(x, env)
            if v:
                return v
        return v
    if t is ast.Compare:
        left = _eval(node.left, env)
        for op, comp in zip(node.ops, node.comparators):
            if type(op) not in _CMP:
                raise CodeError(f"comparison {type(op).__name__} is not supported")
            right = _eval(comp, env)
            if not _CMP[type(op)](left, right):
                return False
            left = right
        return True
    if t is ast.Tuple:
        return tuple(_eval(e, env) for e in node.elts)
    raise CodeError(f"{t.__name__} is not supported in a code block (only assertions over tcp_info fields)")


def evaluate(source: str, info: dict) -> str | None:
    """Run the block's statements; returns None if every assertion holds, else a message
    naming the failed assertion (with its message value) or the unsupported construct."""
    text = source.replace("\\\n", " ")
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as e:
        return f"syntax error in code block: {e.msg}"
    try:
        for stmt in tree.body:
            if isinstance(stmt, ast.Assert):
                if not _eval(stmt.test, info):
                    msg = _eval(stmt.msg, info) if stmt.msg is not None else None
                    return f"assert {ast.unparse(stmt.test)} failed" + (f" (value {msg})" if msg is not None else "")
            elif isinstance(stmt, ast.Expr):
                _eval(stmt.value, info)
            elif isinstance(stmt, ast.Pass):
                pass
            else:
                raise CodeError(f"{type(stmt).__name__} statements are not supported in a code block")
    except CodeError as e:
        return str(e)
    except (ArithmeticError, TypeError) as e:
        return f"error evaluating code block: {e}"
    return None
