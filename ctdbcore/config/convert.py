"""The one cattrs converter of the configuration package.

:func:`make_converter` adds our hooks to a converter it is given (or a new one),
in the style of lsprotocol's converters: config values arrive as strings from
ini/shell files, so booleans and integers are parsed the way 4.17 parses them,
extra keys are refused (a typo must not be silently ignored), and IP addresses
travel as strings for ``--json`` output.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Union, get_args, get_origin

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def parse_bool(value: object) -> bool:
    """4.17 conf.c accepts true/false/yes/no/on/off/1/0 (we ignore case too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise ValueError(f"invalid boolean {value!r} (use true/false, yes/no, on/off, 1/0)")


def parse_int(value: object) -> int:
    """Decimal integers only; ``int()`` alone would also take floats and ``1_0``."""
    if isinstance(value, bool):
        raise ValueError(f"invalid integer {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] in "+-" else text
        if body.isascii() and body.isdigit():
            return int(text)
    raise ValueError(f"invalid integer {value!r}")


def parse_ip(value: object) -> IPAddress:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value.strip())
        except ValueError:
            pass
    raise ValueError(f"invalid IP address {value!r}")


def _is_ip_type(tp: Any) -> bool:
    """True for IPv4Address, IPv6Address and unions of them (optionally with None)."""
    if tp in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        return True
    if get_origin(tp) is Union or type(tp).__name__ == "UnionType":
        args = [a for a in get_args(tp) if a is not type(None)]
        return bool(args) and all(
            a in (ipaddress.IPv4Address, ipaddress.IPv6Address) for a in args
        )
    return False


def _structure_ip(value: object, tp: Any) -> IPAddress | None:
    if value is None and type(None) in get_args(tp):
        return None
    return parse_ip(value)


def make_converter(converter: cattrs.Converter | None = None) -> cattrs.Converter:
    """Add the configuration hooks to ``converter`` (a new detailed one if None)."""
    if converter is None:
        converter = cattrs.Converter(detailed_validation=True)
    converter.register_structure_hook(bool, lambda v, _: parse_bool(v))
    converter.register_structure_hook(int, lambda v, _: parse_int(v))
    converter.register_structure_hook_func(_is_ip_type, _structure_ip)
    converter.register_unstructure_hook(ipaddress.IPv4Address, str)
    converter.register_unstructure_hook(ipaddress.IPv6Address, str)
    # Forbid extra keys for every attrs class, the hook-factory way (cattrs
    # docs "customizing"): an unknown key in a plugin's section is an error.
    converter.register_structure_hook_factory(
        attrs.has,
        lambda cl: make_dict_structure_fn(cl, converter, _cattrs_forbid_extra_keys=True),
    )
    return converter
