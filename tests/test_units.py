"""Unit conversion at the public edge: parse_time, parse_rate, parse_size."""

import math

import pytest

from simsock import parse_rate, parse_size, parse_time
from simsock.units import NS_PER_S, ns_to_s


@pytest.mark.parametrize("text, ns", [
    ("10ms", 10_000_000),
    ("1.5s", 1_500_000_000),
    ("3us", 3_000),
    ("2µs", 2_000),
    ("7ns", 7),
    ("1min", 60 * NS_PER_S),
    ("1h", 3600 * NS_PER_S),
    ("2", 2 * NS_PER_S),            # a bare number in a string is seconds
    ("0.25", 250_000_000),
    (" 5 ms ", 5_000_000),           # surrounding and inner blanks are allowed
    ("1e-3s", 1_000_000),
    ("10MS", 10_000_000),            # units are case-insensitive
])
def test_parse_time_strings(text, ns):
    """A time string with a unit becomes exact integer nanoseconds."""
    value = parse_time(text)
    assert value == ns
    assert type(value) is int


@pytest.mark.parametrize("seconds, ns", [
    (0, 0), (3, 3 * NS_PER_S), (0.5, 500_000_000), (1e-9, 1), (0.001, 1_000_000), (1.4e-9, 1),
])
def test_parse_time_numbers_are_seconds(seconds, ns):
    """A number is seconds, rounded to the nearest integer nanosecond."""
    assert parse_time(seconds) == ns
    assert type(parse_time(seconds)) is int


@pytest.mark.parametrize("bad, exc, message", [
    ("10 parsecs", ValueError, "unknown time unit 'parsecs' in '10 parsecs'; use one of ns, us, ms, s, min, h"),
    ("abc", ValueError, "cannot read 'abc' as a time; write a number with a unit, e.g. '10ms'"),
    ("", ValueError, "cannot read '' as a time"),
    ("-5ms", ValueError, "cannot read '-5ms' as a time"),
    (-1, ValueError, "time must not be negative, got -1"),
    (None, TypeError, "time must be a number or a string like '10ms', not NoneType"),
    (True, TypeError, "time must be a number or a string like '10ms', not bool"),
    (float("nan"), ValueError, "time must be finite, got nan"),
    (float("inf"), ValueError, "time must be finite, got inf"),
])
def test_parse_time_errors(bad, exc, message):
    """Malformed or negative times raise ValueError/TypeError with a message that quotes
    the input and says what is expected."""
    with pytest.raises(exc) as info:
        parse_time(bad)
    assert str(info.value).startswith(message)


def test_parse_time_error_names_the_parameter():
    """The ``what`` keyword names the parameter in the message."""
    with pytest.raises(ValueError, match=r"^link delay must not be negative, got -0.5$"):
        parse_time(-0.5, what="link delay")


@pytest.mark.parametrize("text, bps", [
    ("10Mbit", 10_000_000),
    ("100Mbps", 100_000_000),
    ("1Gbit", 1_000_000_000),
    ("1gbit", 1_000_000_000),
    ("56kbit", 56_000),
    ("8bit", 8),
    ("2mbit/s", 2_000_000),
    ("1e6", 1_000_000),              # bare number: bits per second
    ("1kB", 8_000),                  # B suffix: bytes per second (tc(8))
    ("5MB/s", 40_000_000),
    ("1.5Mbit", 1_500_000),
    ("10Mb", 10_000_000),            # lower-case b: bits (SI), not megabytes
    ("10mb", 10_000_000),
    ("10Mbits/s", 10_000_000),
    ("10MBps", 80_000_000),          # upper-case B: bytes, also with "ps"
    ("10MB", 80_000_000),
    ("10B/s", 80),
    ("10b", 10),
])
def test_parse_rate_strings(text, bps):
    """A lower-case b is a bit, an upper-case B a byte (x8); tc(8)'s bit units as written."""
    value = parse_rate(text)
    assert value == bps
    assert type(value) is int


def test_parse_rate_numbers_are_bits_per_second():
    """A number is bits per second, rounded to an int."""
    assert parse_rate(10_000_000) == 10_000_000
    assert parse_rate(1e6) == 1_000_000
    assert type(parse_rate(1e6)) is int


@pytest.mark.parametrize("bad, exc, message", [
    ("0Mbit", ValueError, "rate must be positive, got '0Mbit'"),
    (0, ValueError, "rate must be positive, got 0"),
    (-5, ValueError, "rate must be positive, got -5"),
    ("10furlongs", ValueError, "unknown rate unit 'furlongs' in '10furlongs'; use bit, kbit, Mbit, Gbit"),
    ("fast", ValueError, "cannot read 'fast' as a rate; write a number with a unit, e.g. '100Mbit'"),
    ([1], TypeError, "rate must be a number or a string like '100Mbit', not list"),
    (float("inf"), ValueError, "rate must be finite, got inf"),
])
def test_parse_rate_errors(bad, exc, message):
    """Zero, negative, unknown-unit and non-numeric rates are rejected with a clear message."""
    with pytest.raises(exc) as info:
        parse_rate(bad)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("text, size", [
    ("1500", 1500), ("1500B", 1500), ("64KiB", 65536), ("1.5k", 1500), ("1MiB", 1 << 20),
    ("1MB", 10**6), ("2kb", 2000), ("0.5KiB", 512), ("1GiB", 1 << 30),
])
def test_parse_size_strings(text, size):
    """Sizes: decimal (k, KB, MB) and binary (KiB, MiB) units, in bytes."""
    value = parse_size(text)
    assert value == size
    assert type(value) is int


def test_parse_size_numbers():
    """A whole number (int or integral float) is bytes."""
    assert parse_size(1500) == 1500
    assert parse_size(1500.0) == 1500
    assert type(parse_size(1500.0)) is int


@pytest.mark.parametrize("bad, exc, message", [
    (1.5, ValueError, "size must be a whole number of bytes, got 1.5"),
    (-1, ValueError, "size must not be negative, got -1"),
    ("x", ValueError, "cannot read 'x' as a size; write a number with a unit, e.g. '64KiB'"),
    ("10 quarts", ValueError, "unknown size unit 'quarts' in '10 quarts'; use B, KB, KiB, MB, MiB"),
    (None, TypeError, "size must be a number or a string like '64KiB', not NoneType"),
])
def test_parse_size_errors(bad, exc, message):
    """Fractional, negative and unreadable sizes are rejected with a clear message."""
    with pytest.raises(exc) as info:
        parse_size(bad)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("text", ["1.5", "1.0001k", "0.3KiB"])
def test_parse_size_fractional_strings_are_rejected_like_floats(text):
    """A string that denotes a fractional number of bytes is an error, exactly as the float
    1.5 is, not silently truncated (parse_size("1.5") must not return 1)."""
    with pytest.raises(ValueError, match="whole number of bytes"):
        parse_size(text)


def test_ns_to_s():
    """ns_to_s converts integer nanoseconds to float seconds for results."""
    assert ns_to_s(1_500_000_000) == 1.5
    assert math.isclose(ns_to_s(1), 1e-9)
