"""Print the conformance scenario table as markdown: scenario, claim, pass/xfail.

Run: ``python -m tests.conformance.table`` (from the repository root). The claim is the
first sentence of the test's docstring; status is ``xfail`` (with its reason) for a test marked
``xfail``, else ``pass``.
"""

import ast
from pathlib import Path

HERE = Path(__file__).parent


def _xfail_reason(fn: ast.FunctionDef) -> str | None:
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.xfail"):
            for kw in d.keywords:
                if kw.arg == "reason":
                    return ast.literal_eval(kw.value)
            return ""
    return None


def _params(fn: ast.FunctionDef) -> list:
    for d in fn.decorator_list:
        if isinstance(d, ast.Call) and ast.unparse(d.func).endswith("mark.parametrize"):
            try:
                return ast.literal_eval(d.args[1])
            except ValueError:          # parameters from a name (e.g. a table of cases): one row
                return ["..."]
    return [None]


def _claim(doc: str) -> str:
    """The docstring's first sentence (its first paragraph, joined, up to the first full stop)."""
    para = " ".join(line.strip() for line in doc.split("\n\n")[0].splitlines())
    end = para.find(". ")
    return para if end < 0 else para[:end + 1]


def rows():
    for path in sorted(HERE.glob("test_*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                claim = _claim(ast.get_docstring(node) or "")
                reason = _xfail_reason(node)
                for p in _params(node):
                    name = node.name[len("test_"):] + ("" if p is None else f"[{p}]")
                    status = "pass" if reason is None else f"xfail: {reason}"
                    yield path.stem[len("test_"):], name, claim, status


def main():
    print("| proto | scenario | claim | status |")
    print("|---|---|---|---|")
    n_pass = n_xfail = 0
    for proto, name, claim, status in rows():
        claim = claim.replace("|", "\\|")
        print(f"| {proto} | `{name}` | {claim} | {status.replace('|', '/')} |")
        n_pass += status == "pass"
        n_xfail += status != "pass"
    print(f"\n{n_pass} pass, {n_xfail} xfail.")


if __name__ == "__main__":
    main()
