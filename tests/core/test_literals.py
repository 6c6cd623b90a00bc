import pytest

from azr.literals import LiteralError, is_literal_value, parse_arguments, parse_literal, strict_equal


@pytest.mark.parametrize("text, expected", [
    ("1, 2", (1, 2)),
    ("(1, 2)", ((1, 2),)),
    ("[1, 2], 'a'", ([1, 2], "a")),
    ("", ()),
    ("-1.5, 2j", (-1.5, 2j)),
    ("{1: 'a'}, set()", ({1: "a"}, set())),
    ("frozenset({1, 2})", (frozenset({1, 2}),)),
    ("'x'  # trailing comment", ("x",)),
])
def test_parse_arguments_accepts_literal_positional_arguments(text, expected):
    assert strict_equal(parse_arguments(text), expected)


@pytest.mark.parametrize("text", [
    "1) or True or (1",          # the reference's input-injection hole
    "x", "f(1)", "1 + 2", "[1, 2].__class__", "*[1]", "a=1", "__import__('os')",
    "(1,) * 10**9", "lambda: 0", "{**{}}", "...", "[" * 500 + "]" * 500,
    "'a'" * 10_000,
])
def test_parse_arguments_rejects_everything_else(text):
    with pytest.raises(LiteralError):
        parse_arguments(text)


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 1.5, -0.0, 1e300, 2j, (1 - 2j), "é\n'\"", b"\x00\xff", (), (1,), [1, [2]],
    {1: (2, 3), "a": None}, set(), {1, 2}, frozenset(), frozenset({"a"}), {(1, 2): frozenset({3})},
])
def test_every_allowed_type_round_trips_through_its_repr(value):
    assert is_literal_value(value)
    assert strict_equal(parse_literal(repr(value)), value)


def test_strict_equal_compares_types_at_every_level():
    assert not strict_equal((1,), [1])
    assert not strict_equal(1, True)
    assert not strict_equal(1, 1.0)
    assert not strict_equal([1, (2,)], [1, [2]])
    assert not strict_equal({1: "a"}, {True: "a"})
    assert not strict_equal({1}, {True})
    assert not strict_equal({1: "a"}, {1: "b"})
    assert strict_equal({"a": [1, {2}]}, {"a": [1, {2}]})
    assert strict_equal(frozenset({1, 2}), frozenset({2, 1}))
    assert not strict_equal(float("nan"), float("nan"))


def test_is_literal_value_rejects_subclasses_and_other_types():
    class Liar(int):
        def __eq__(self, other):
            return True

    assert not is_literal_value(Liar(1))
    assert not is_literal_value([1, object()])
    assert not is_literal_value(range(3))
    assert not is_literal_value({1: print})


def test_non_literal_reprs_do_not_parse():
    for text in ("nan", "inf", "<object at 0x1>", "range(3)", "set([1])", "frozenset(x)"):
        with pytest.raises(LiteralError):
            parse_literal(text)


SIMPLE_OR_NOT = ["True", "False", "None", "0", "-0", "007", "12", "-12", "1_000", "0x1f", "'abc'", '"a\'b"', "'a\"b'",
                 "'a\\'b'", "'a'b'", "'a' 'b'", "''", '""', "'", "'\\n'", "'é'", "'a#b'", " 5 ", "1" * 41, "1" * 42,
                 "--1", "+1", "'\t'", "b'x'", "r'x'", "True1", "'a\x00b'", "1e3", "5 # five"]


@pytest.mark.parametrize("text", SIMPLE_OR_NOT)
def test_the_parser_free_path_agrees_with_the_parser(text):
    """Constants, short integers and plain strings skip the parser: their value (and type) is
    the parser's, and whatever the parser rejects is still rejected."""
    import ast

    from azr.literals import _NOT_SIMPLE, _simple_literal

    try:
        expected = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError) as exc:
        expected = exc
    fast = _simple_literal(text.strip())
    if fast is not _NOT_SIMPLE:
        assert type(fast) is type(expected) and fast == expected
    if isinstance(expected, Exception):
        with pytest.raises(LiteralError):
            parse_literal(text)
    else:
        assert strict_equal(parse_literal(text), expected)
        assert strict_equal(parse_arguments(text)[0], expected)
