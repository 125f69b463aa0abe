#!/usr/bin/env python3
"""Times twilio-python's RequestValidator.validate on a webhook fixture, valid and with a
wrong signature, and prints one JSON line with nanoseconds per call (the fastest of
several rounds, the first discarded as warm-up).

usage: python compare.py FIXTURE.json   (with twilio installed)
"""
import json
import sys
import time

import twilio
from twilio.request_validator import RequestValidator

WRONG = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="


def ns_per_call(round_s, fn):
    calls = 0
    t0 = time.perf_counter_ns()
    while time.perf_counter_ns() - t0 < 50_000_000:
        fn()
        calls += 1
    calibration = time.perf_counter_ns() - t0
    per_round = max(1, int(calls * round_s * 1e9 / calibration))
    best = float("inf")
    for i in range(6):
        start = time.perf_counter_ns()
        for _ in range(per_round):
            fn()
        ns = (time.perf_counter_ns() - start) / per_round
        if i > 0:
            best = min(best, ns)
    return best


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        f = json.load(fh)
    # Form pairs as the dict a framework hands over (no repeated keys in the fixture).
    params = dict(f["form"])
    validator = RequestValidator(f["token"])
    if not validator.validate(f["url"], params, f["signature"]):
        raise SystemExit("the fixture does not verify with twilio-python")
    if validator.validate(f["url"], params, WRONG):
        raise SystemExit("a wrong signature verifies with twilio-python")
    valid = ns_per_call(0.3, lambda: validator.validate(f["url"], params, f["signature"]))
    invalid = ns_per_call(0.3, lambda: validator.validate(f["url"], params, WRONG))
    print(json.dumps({
        "impl": "twilio-python %s (RequestValidator.validate)" % twilio.__version__,
        "valid_ns": round(valid, 1),
        "invalid_ns": round(invalid, 1),
    }))


if __name__ == "__main__":
    main()
