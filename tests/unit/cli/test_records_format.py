"""Record dumps and ptrans input as 4.17's tools/ctdb.c prints and parses them."""

from __future__ import annotations

import io

from ctdbcore.protocol.constants import RecordFlags
from ctdbcore.protocol.records import LtdbHeader
from ctdbcore.tools.ctdb_records import escape, format_record, parse_ptrans


class _T:
    def __init__(self) -> None:
        self.err = io.StringIO()

    def eprint(self, text: str) -> None:
        self.err.write(text)


def test_escape_keeps_printable_ascii_but_quote_and_backslash() -> None:
    assert escape(b'ab "c" \\d\x00\xff') == 'ab \\22c\\22 \\5Cd\\00\\FF'


def test_format_record_names_flags_in_4_17_order() -> None:
    h = LtdbHeader(rsn=7, dmaster=2, flags=RecordFlags.MIGRATED_WITH_DATA | RecordFlags.RO_HAVE_READONLY)
    assert format_record(b"k", h, b"v") == (
        'key(1) = "k"\ndmaster: 2\nrsn: 7\nflags: 0x02010000 MIGRATED_WITH_DATA RO_HAVE_READONLY\n'
        'data(1) = "v"\n\n')


def test_ptrans_lines() -> None:
    t = _T()
    text = '"a" "1"\n  \t"b" "0x4142"\nbad line\n"" "skipped"\n"c" ""\n"d" unquoted\n"e" "unterminated\n'
    assert parse_ptrans(t, text) == [(b"a", b"1"), (b"b", b"AB"), (b"c", b"")]
    # 4.17 prints the rest of the line, newline included, then its own newline
    assert t.err.getvalue() == ("Unsupported input format in bad line\n\n"
                                'Unsupported input format in  unquoted\n\n'
                                'Unmatched " in input  "unterminated\n\n')


def test_ptrans_hex() -> None:
    """4.17 decodes the quoted text, but its messages quote the rest of the line (the C
    string runs on past the closing quote); a line that fails is skipped."""
    t = _T()
    text = '"0xZZ" "1"\n"k3" "0xABC"\n"0x6b34" "0x3g"\n"k5" "0x"\n"0x6B36" "0x00ff"\n"\xe9" "\xff"\n'
    assert parse_ptrans(t, text) == [(b"k5", b""), (b"k6", b"\x00\xff"), (b"\xe9", b"\xff")]
    assert t.err.getvalue() == ('Invalid hex: ZZ" "1"\n\n'
                                'Key (ABC"\n) contains odd number of hex digits\n'
                                'Invalid hex: 3g"\n\n')
