"""Well-formed JSON5 rewritten as JSON, so that the C ``json`` module can read it fast.

Rules:
- One linear regex scan, token by token: comments and JSON5 whitespace are
  dropped, single-quoted and double-quoted strings are decoded (JSON5
  escapes: ``\\'``, ``\\v``, ``\\0``, ``\\xHH``, line continuations, any
  other character escaping itself) and written back as JSON strings,
  unquoted keys become quoted keys, ``+1``, ``.5``, ``5.``, ``0x1F``,
  ``+Infinity`` become JSON numbers, and a single trailing comma before
  ``}`` or ``]`` is dropped. Structure (colons, commas, brackets) is left
  for ``json`` to check.
- Anything the scan is not sure of returns None, never a guess: a
  character it does not know, an unterminated string or comment, a bad
  escape, a ``\\u`` escape (UTF-16 surrogate pairs are json5's business),
  a non-ASCII or escaped identifier, a bare word that is not a key or a
  JSON5 literal. The caller then asks the ``json5`` package, which is slow
  but exact and reports line and column. So this module only ever speeds up
  text that json5 reads the same way (tests/test_json5_to_json.py checks it
  against json5 on generated text).
"""

from __future__ import annotations

import json
import re

_TOKEN = re.compile(
    r"""(?P<space>[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+)
    |(?P<line_comment>//[^\n\r\u2028\u2029]*)
    |(?P<block_comment>/\*(?:[^*]|\*(?!/))*\*/)
    |(?P<punct>[{}\[\]:,])
    |"(?P<double>[^"\\\n\r]*(?:\\(?:\r\n|[\s\S])[^"\\\n\r]*)*)"
    |'(?P<single>[^'\\\n\r]*(?:\\(?:\r\n|[\s\S])[^'\\\n\r]*)*)'
    |(?P<number>[+-]?(?:0[xX][0-9a-fA-F]+|(?:0|[1-9][0-9]*)(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)|[+-](?:Infinity|NaN))
    |(?P<word>[A-Za-z_$][A-Za-z0-9_$]*)  # also unsigned Infinity and NaN: a key or a literal by what follows
    |(?P<other>[\s\S])""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(?:(?P<continuation>\r\n|[\n\r\u2028\u2029])|x(?P<hex>[0-9a-fA-F]{2})|(?P<char>[\s\S]))")
_SINGLE_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "0": "\0"}
_LITERALS = {"true": "true", "false": "false", "null": "null", "Infinity": "Infinity", "NaN": "NaN"}


class _NotSure(Exception):
    pass


def json5_to_json(text: str) -> str | None:
    """JSON text with the same value as the JSON5 ``text``, or None when json5 must decide.

    >>> json5_to_json("{a: 'it\\\\'s', b: [+1, .5, 0x1F,], // c\\n}")
    '{ "a" : "it\\'s" , "b" : [ 1 , 0.5 , 31 ] }'
    >>> json5_to_json("{a: b}") is None, json5_to_json("[1,,]")
    (True, '[ 1 , , ]')
    """
    out: list[str] = []
    pending_word: str | None = None
    try:
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            if kind in ("space", "line_comment", "block_comment"):
                continue
            if pending_word is not None:  # a bare word is a key when a colon follows, else a literal
                if kind == "punct" and match.group() == ":":
                    out.append(json.dumps(pending_word))
                elif pending_word in _LITERALS:
                    out.append(_LITERALS[pending_word])
                else:
                    return None
                pending_word = None
            if kind == "punct":
                token = match.group()
                if token in "}]" and out[-1:] == [","] and len(out) >= 2 and out[-2] not in ("{", "[", ","):
                    out.pop()  # one trailing comma; anything else stays for json to refuse
                out.append(token)
            elif kind == "double" or kind == "single":
                out.append(json.dumps(_decode_string(match.group(kind))))
            elif kind == "number":
                out.append(_number(match.group()))
            elif kind == "word":
                pending_word = match.group()
            else:
                return None
    except _NotSure:
        return None
    if pending_word is not None:
        if pending_word not in _LITERALS:
            return None
        out.append(_LITERALS[pending_word])
    return " ".join(out)


def _decode_string(body: str) -> str:
    if "\\" not in body:
        return body
    if "\\u" in body:
        raise _NotSure  # json5 decides how \\u escapes and surrogate pairs combine
    return _ESCAPE.sub(_unescape, body)


def _unescape(match: re.Match[str]) -> str:
    if match.group("continuation") is not None:
        return ""
    if match.group("hex") is not None:
        return chr(int(match.group("hex"), 16))
    char = match.group("char")
    following = match.string[match.end() : match.end() + 1]
    if char in "123456789xu" or (char == "0" and following != "" and following in "0123456789"):
        raise _NotSure  # not a JSON5 escape (or \x without two hex digits)
    return _SINGLE_ESCAPES.get(char, char)


def _number(token: str) -> str:
    sign = "-" if token.startswith("-") else ""
    digits = token.lstrip("+-")
    if digits in ("Infinity", "NaN"):
        return "NaN" if digits == "NaN" else sign + "Infinity"
    if digits[:2] in ("0x", "0X"):
        try:
            return sign + str(int(digits, 16))
        except ValueError:  # more digits than int() will print
            raise _NotSure from None
    mantissa, marker, exponent = digits.partition("e") if "e" in digits else digits.partition("E")
    if mantissa.startswith("."):
        mantissa = "0" + mantissa
    if mantissa.endswith("."):
        mantissa += "0"
    return sign + mantissa + (("e" + exponent) if marker else "")
