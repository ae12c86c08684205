"""Python 2 to 3 at import time, for the Autobahn case files of the sdist.

Input: the directory of the `autobahntestsuite` package inside an unpacked
sdist. Output: its `case` package and `caseset` module, importable as
`autobahntestsuite.case` and `autobahntestsuite.caseset`; nothing else of
the sdist is imported (its `__init__` pulls in Twisted).

Each source goes through lib2to3's standard fixers, plus three rules of our
own where Python 2 meant something that 2to3 does not carry over:

- byte strings: a plain literal was bytes in Python 2. It stays `str` here
  (the cases use plain strings as text too: names, descriptions, dict keys),
  but every code point of it is one byte: raw UTF-8 characters in the source
  become `\\xNN` escapes of their bytes. The fuzzing client turns such `str`
  back into bytes with latin-1, so what goes on the wire is what Python 2
  sent, and `Case.compare` (patched in `load_cases`) compares expected and
  received events the same way;
- division: `a / b` becomes `_py2_div(a, b)`, integer division when both
  are integers (case 10.1.1 counts frames with it);
- classes: `type(name, (object, Case), ...)` made a new-style class of an
  old-style one; Python 3 refuses that base list, so `object` is dropped.

The translated modules get their own builtins: these helpers and an
`__import__` that hands out `shims.py` for Autobahn, Twisted, zope,
pkg_resources and Python 2's binascii.
"""

import builtins
import importlib.abc
import importlib.util
import os
import pickle
import re
import sys
import warnings

with warnings.catch_warnings():
    # lib2to3 is deprecated (gone in Python 3.13) but still ships with 3.11/3.12.
    warnings.simplefilter("ignore", (DeprecationWarning, PendingDeprecationWarning))
    from lib2to3 import pygram, pytree, refactor
    from lib2to3.pgen2 import token

import shims

PACKAGE = "autobahntestsuite"
_TRANSLATED = {PACKAGE + ".case", PACKAGE + ".caseset"}


def _py2_div(a, b):
    """Python 2's `/`: floor division between integers."""
    if isinstance(a, int) and isinstance(b, int):
        return a // b
    return a / b


def _py2_type(*args):
    """`type`, accepting Python 2's `(object, OldStyleClass)` bases."""
    if len(args) == 3:
        name, bases, namespace = args
        if len(bases) > 1:
            bases = tuple(base for base in bases if base is not object)
        return type(name, bases, namespace)
    return type(*args)


_STRING_PREFIX = re.compile(r"^([A-Za-z]*)(['\"].*)$", re.S)


def _py2_bytes_literal(leaf):
    """Rewrites a plain (byte) string literal so that its code points are
    the bytes Python 2 read: non-ASCII source characters become the `\\xNN`
    escapes of their UTF-8 encoding, and `\\u`, `\\U`, `\\N` (no escapes in a
    Python 2 byte string) keep their backslash."""
    prefix, body = _STRING_PREFIX.match(leaf.value).groups()
    if "u" in prefix.lower() or "b" in prefix.lower():
        return
    raw = "r" in prefix.lower()
    if not raw:
        body = re.sub(r"(?<!\\)((?:\\\\)*)\\([uUN])", r"\1\\\\\2", body)
    if any(ord(char) > 127 for char in body):
        if raw:
            raise SyntaxError("raw byte string with non-ASCII characters: %r" % leaf.value)
        body = "".join(
            char if ord(char) < 128 else "".join("\\x%02x" % b for b in char.encode("utf-8"))
            for char in body
        )
    leaf.value = prefix + body


def _py2_division(node):
    """Replaces `a / b / c` (one `term` node) with nested `_py2_div` calls;
    other operators of the same term keep their place."""
    children = node.children
    text = str(children[0]).lstrip()
    for op, operand in zip(children[1::2], children[2::2]):
        if op.type == token.SLASH:
            text = "_py2_div(%s, %s)" % (text, str(operand).strip())
        else:
            text = "(%s) %s %s" % (text, op.value, str(operand).strip())
    replacement = pytree.Leaf(token.NAME, text)
    replacement.prefix = node.prefix
    node.replace(replacement)


class _Translator(refactor.RefactoringTool):
    """lib2to3 with the rules above: literals before its fixers (which drop
    the `u` prefix that tells text from bytes), division after them (so
    the operands are already translated)."""

    def refactor_tree(self, tree, name):
        for node in tree.pre_order():
            if node.type == token.STRING:
                _py2_bytes_literal(node)
            elif node.type == token.SLASHEQUAL:
                raise SyntaxError("%s: '/=' has no translation here" % name)
        changed = super().refactor_tree(tree, name)
        terms = [
            node
            for node in tree.pre_order()
            if node.type == pygram.python_symbols.term
            and any(child.type == token.SLASH for child in node.children)
        ]
        # Innermost first, so an outer term sees its operands translated.
        for node in reversed(terms):
            _py2_division(node)
        return changed or bool(terms)


def _translator():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, PendingDeprecationWarning))
        fixers = refactor.get_fixers_from_package("lib2to3.fixes")
        return _Translator(fixers)


def _case_builtins(stand_ins):
    names = dict(vars(builtins))

    def case_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name in stand_ins:
            return stand_ins[name] if fromlist else stand_ins[name.split(".")[0]]
        return builtins.__import__(name, globals, locals, fromlist, level)

    names.update(__import__=case_import, _py2_div=_py2_div, type=_py2_type)
    return names


class _Loader(importlib.abc.Loader):
    def __init__(self, path, translator, case_builtins):
        self.path = path
        self.translator = translator
        self.case_builtins = case_builtins

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        with open(self.path, "rb") as source_file:
            source = source_file.read().decode("utf-8")
        if not source.endswith("\n"):
            source += "\n"
        with warnings.catch_warnings():
            # lib2to3's own deprecation, and Python 2 regex strings such as
            # '\.' that Python 3 warns about (same meaning in both).
            warnings.simplefilter("ignore")
            tree = self.translator.refactor_string(source, self.path)
            code = compile(str(tree), self.path, "exec")
        module.__builtins__ = self.case_builtins
        exec(code, module.__dict__)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds `autobahntestsuite` (an empty package here), its `case`
    package and modules, and `caseset`, in the sdist."""

    def __init__(self, package_dir):
        self.package_dir = package_dir
        self.translator = _translator()
        self.case_builtins = _case_builtins(shims.modules(package_dir))

    def find_spec(self, fullname, path=None, target=None):
        if fullname == PACKAGE:
            spec = importlib.util.spec_from_loader(fullname, _EmptyPackage(), is_package=True)
            spec.submodule_search_locations = [self.package_dir]
            return spec
        if not any(fullname == name or fullname.startswith(name + ".") for name in _TRANSLATED):
            return None
        relative = fullname[len(PACKAGE) + 1 :].split(".")
        base = os.path.join(self.package_dir, *relative)
        if os.path.isdir(base):
            source, package = os.path.join(base, "__init__.py"), True
        else:
            source, package = base + ".py", False
        if not os.path.isfile(source):
            return None
        loader = _Loader(source, self.translator, self.case_builtins)
        return importlib.util.spec_from_file_location(
            fullname,
            source,
            loader=loader,
            submodule_search_locations=[base] if package else None,
        )


class _EmptyPackage(importlib.abc.Loader):
    def create_module(self, spec):
        return None

    def exec_module(self, module):
        pass


def _as_py2_bytes(value):
    """Expected events hold `str` where Python 2 held bytes; received ones
    hold bytes. Both become bytes (latin-1, one byte per code point)."""
    if isinstance(value, str) and all(ord(char) < 256 for char in value):
        return value.encode("latin-1")
    if isinstance(value, (list, tuple)):
        return type(value)(_as_py2_bytes(item) for item in value)
    return value


def _compare(self, obj1, obj2):
    return pickle.dumps(_as_py2_bytes(obj1)) == pickle.dumps(_as_py2_bytes(obj2))


def load_cases(package_dir):
    """Imports the case package of the sdist at `package_dir`; returns the
    `autobahntestsuite.case` module and the `CaseSet` class."""
    sys.meta_path.insert(0, _Finder(package_dir))
    case_package = importlib.import_module(PACKAGE + ".case")
    caseset = importlib.import_module(PACKAGE + ".caseset")
    base = importlib.import_module(PACKAGE + ".case.case").Case
    # Case.compare pickles both event lists; see _as_py2_bytes.
    base.compare = _compare
    return case_package, caseset.CaseSet
