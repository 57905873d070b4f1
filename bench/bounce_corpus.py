"""Score `listserv.bounces.analyse.analyse` against the shared bounce corpus.

Run from anywhere: ``python bench/bounce_corpus.py`` (add ``-v`` to list every miss).

Scoring rule (the same one `tests/bounces/test_analyse.py` asserts):

* A file is a *scored bounce* when the corpus names its failed recipient(s):
  - ``flufl-bounce/*`` with a non-empty ``expected`` (permanent ∪ temporary);
  - ``postfix-3.7-generated/*`` (the recipients the test mails were sent to);
  - ``sisimai/*.eml`` whose go-sisimai table reasons (or, for the 18 files without a
    table, Sisimai 4.25.15's observed reasons) contain no non-bounce reason
    (``delivered``, ``vacation``, ``feedback``) and for which Sisimai 4.25.15 observed
    at least one recipient; the expected set is those observed recipients, lowercased.
    ``observed`` is not ground truth, so `ADDRESS_FIXES` records the few cases checked
    by eye where it is wrong, each with its reason.
* A scored bounce is a *hit* when ``is_bounce`` is true and permanent ∪ temporary
  contains every expected address. Addresses reported beyond the expected set are
  counted separately as *extras* (files with extras, total extra addresses).
* A *non-bounce* is ``sisimai/not-bounces/*``, every sisimai file whose reasons are all
  non-bounce ones (auto-replies, success DSNs, ARF complaints). It passes only when
  ``is_bounce`` is false and both sets are empty.
* A *bounce that names nobody* is flufl's ``dumbass_01.txt`` (flufl asserts that
  nothing is found): it passes when no address is reported.
* Not scored for addresses, reported for information: files for which the corpus names
  no recipient (all ``lhost-dragonfly-*``, Sisimai 4.25.15 lacks that detector;
  ``lhost-mimecast-01/02``; flufl's ``bounce_01.txt``).
* ``sisimai/line-endings/{crlf,cr}``: a file passes when it gives the same report as
  its text with line ends made LF (the LF answer itself is scored above).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
BOUNCES = CORPUS / "bounces"
sys.path.insert(0, str(ROOT))

from listserv.bounces.analyse import BounceReport, analyse  # noqa: E402

NON_BOUNCE_REASONS = frozenset({"delivered", "vacation", "feedback"})
SISIMAI_OBSERVED = "Sisimai 4.25.15 (Debian libsisimai-perl)"

# Where Sisimai 4.25.15's observed recipient was checked by eye and found wrong.
ADDRESS_FIXES: dict[str, tuple[frozenset[str], str]] = {
    "sisimai/lhost-domino-03.eml": (
        frozenset({"kijitora@neko.example.org"}),
        "observed kijitora@neko.example.com occurs nowhere in the file; Final-Recipient, "
        "the returned To and its Received 'for' all say kijitora@neko.example.org",
    ),
    "sisimai/lhost-office365-04.eml": (
        frozenset({"otsu-sakaba-hunter-neko-nyaaaaaaan@ezweb.ne.jp"}),
        "observed took a mailto: link the anonymiser rewrote differently; Final-Recipient, "
        "X-Display-Name and the visible text say otsu-sakaba-hunter-neko-nyaaaaaaan@",
    ),
}

Analyser = Callable[[bytes], BounceReport]


@dataclass
class Case:
    path: str
    kind: str  # "bounce" | "non-bounce" | "names-nobody" | "unscored"
    expected: frozenset[str] = frozenset()
    temporary: frozenset[str] | None = None  # known permanent/temporary split, if any


@dataclass
class Score:
    scored: int = 0
    hits: int = 0
    misses: list[tuple[str, frozenset[str], frozenset[str]]] = field(default_factory=list)
    extra_files: int = 0
    extra_addresses: int = 0
    nonbounces: int = 0
    false_positives: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    nobody: int = 0
    nobody_wrong: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    by_source: Counter[str] = field(default_factory=Counter)
    hits_by_source: Counter[str] = field(default_factory=Counter)
    extras: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    unscored: int = 0
    unscored_named: int = 0
    split_checked: int = 0
    split_wrong: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.hits / self.scored if self.scored else 0.0


def family(path: str) -> str:
    """Group by MTA family: the file name without its number (``lhost-exim-07`` -> exim)."""
    name = Path(path).stem
    return name.rsplit("-", 1)[0] if "-" in name else name.rsplit("_", 1)[0]


def load_cases() -> list[Case]:
    """Turn expected.json into scored cases, by the rule in the module docstring."""
    files = json.loads((BOUNCES / "expected.json").read_text())["files"]
    cases: list[Case] = []
    for path, entry in sorted(files.items()):
        exp = entry.get("expected")
        if path.startswith("flufl-bounce/"):
            if path.endswith("dumbass_01.txt"):
                cases.append(Case(path, "names-nobody"))
            elif not exp or not (exp["permanent"] or exp["temporary"]):
                cases.append(Case(path, "unscored"))
            else:
                temp = frozenset(a.lower() for a in exp["temporary"])
                perm = frozenset(a.lower() for a in exp["permanent"])
                cases.append(Case(path, "bounce", perm | temp, temp))
            continue
        observed = entry.get("observed", {}).get(SISIMAI_OBSERVED, [])
        if path.startswith("postfix-3.7-generated/"):
            exp_set = frozenset(r["recipient"].lower() for r in observed)
            temp = frozenset(r["recipient"].lower() for r in observed if r["action"] == "delayed")
            cases.append(Case(path, "bounce", exp_set, temp))
            continue
        if "/not-bounces/" in path:
            cases.append(Case(path, "non-bounce"))
            continue
        reasons = {r["reason"] for r in exp} if exp else {r["reason"] for r in observed}
        if reasons and reasons <= NON_BOUNCE_REASONS:
            cases.append(Case(path, "non-bounce"))
            continue
        addresses = frozenset(r["recipient"].lower() for r in observed if r["recipient"])
        if path in ADDRESS_FIXES:
            addresses = ADDRESS_FIXES[path][0]
        cases.append(Case(path, "bounce" if addresses else "unscored", addresses))
    return cases


def run(analyser: Analyser, cases: list[Case]) -> Score:
    score = Score()
    for case in cases:
        raw = (BOUNCES / case.path).read_bytes()
        try:
            report = analyser(raw)
        except Exception as exc:  # the bench must survive what analyse must not do
            score.crashes.append(f"{case.path}: {exc!r}")
            report = BounceReport(frozenset(), frozenset(), False)
        found = report.permanent | report.temporary
        if case.kind == "bounce":
            source = case.path.split("/")[0]
            score.scored += 1
            score.by_source[source] += 1
            if report.is_bounce and case.expected <= found:
                score.hits += 1
                score.hits_by_source[source] += 1
            else:
                score.misses.append((case.path, case.expected, found))
            extra = found - case.expected
            if extra:
                score.extra_files += 1
                score.extra_addresses += len(extra)
                score.extras.append((case.path, extra))
            if case.temporary is not None and case.expected <= found:
                score.split_checked += 1
                if report.temporary & case.expected != case.temporary:
                    score.split_wrong.append(case.path)
        elif case.kind == "non-bounce":
            score.nonbounces += 1
            if report.is_bounce or found:
                score.false_positives.append((case.path, found))
        elif case.kind == "names-nobody":
            score.nobody += 1
            if found:
                score.nobody_wrong.append((case.path, found))
        else:
            score.unscored += 1
            score.unscored_named += bool(found)
    return score


def line_ending_check(analyser: Analyser) -> tuple[int, int, int, list[str]]:
    """CRLF/CR copies must give the same report as their text with LF line ends.

    Also counted: how many name an address, which is upstream's own assertion; the
    auto-reply and complaint samples in the set (rfc3834-01, arf-01) rightly do not.
    """
    folder = BOUNCES / "sisimai" / "line-endings"
    total = same = named = 0
    failures: list[str] = []
    for path in sorted(folder.rglob("*.eml")):
        raw = path.read_bytes()
        lf = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        total += 1
        try:
            got, want = analyser(raw), analyser(lf)
        except Exception as exc:
            failures.append(f"{path.relative_to(folder)}: {exc!r}")
            continue
        named += bool(got.permanent or got.temporary)
        if got == want:
            same += 1
        else:
            failures.append(str(path.relative_to(folder)))
    return total, same, named, failures


def flufl_alone(raw: bytes) -> BounceReport:
    """flufl.bounce as a daemon would call it bare, for comparison."""
    from flufl.bounce import all_failures

    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    temporary, permanent = all_failures(msg)
    perm = frozenset(a.decode("ascii", "replace").lower() for a in permanent)
    temp = frozenset(a.decode("ascii", "replace").lower() for a in temporary) - perm
    return BounceReport(perm, temp, bool(perm or temp))


def report(name: str, score: Score, *, verbose: bool) -> None:
    print(f"== {name}")
    print(f"scored bounce files: {score.scored}, hits: {score.hits}, rate: {score.rate:.1%}")
    for source, total in sorted(score.by_source.items()):
        hits = score.hits_by_source[source]
        print(f"   {source}: {hits}/{total} = {hits / total:.1%}")
    print(f"files with extra addresses: {score.extra_files} ({score.extra_addresses} addresses)")
    print(f"non-bounces: {score.nonbounces}, false positives: {len(score.false_positives)}")
    for path, found in score.false_positives:
        print(f"   FP {path}: {sorted(found)}")
    print(f"bounces that name nobody: {score.nobody}, we named someone in "
          f"{len(score.nobody_wrong)}")
    print(f"permanent/temporary split checked on {score.split_checked}, "
          f"wrong: {len(score.split_wrong)} {score.split_wrong}")
    print(f"unscored (no recipient in corpus): {score.unscored}, "
          f"we named someone in {score.unscored_named}")
    if score.crashes:
        print(f"EXCEPTIONS: {len(score.crashes)}")
        for line in score.crashes[:10]:
            print("   ", line)
    by_family = Counter(family(path) for path, _, _ in score.misses)
    print("misses by family (top 15):", ", ".join(f"{f} {n}" for f, n in
                                                  by_family.most_common(15)) or "none")
    if verbose:
        for path, want, got in score.misses:
            print(f"   MISS {path}: want {sorted(want)} got {sorted(got)}")
        for path, extra in score.extras:
            print(f"   EXTRA {path}: {sorted(extra)}")


def ordinary_mail_check(analyser: Analyser) -> tuple[int, list[str]]:
    """Run over shared/corpus/messages (tricky MIME, mostly not bounces): no exception
    allowed; the files taken for bounces are listed to be checked by eye."""
    folder = CORPUS / "messages"
    total = 0
    flagged: list[str] = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith(("MANIFEST", "LICENSE")):
            continue
        total += 1
        result = analyser(path.read_bytes())
        if result.is_bounce:
            flagged.append(f"{path.relative_to(folder)} {sorted(result.recipients)}")
    return total, flagged


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="list every miss")
    args = parser.parse_args()
    if not (BOUNCES / "expected.json").is_file():
        print(f"bounce corpus not found at {BOUNCES}", file=sys.stderr)
        return 2
    cases = load_cases()
    print("scoring rule: see the docstring of bench/bounce_corpus.py; expectation fixes:")
    for path, (_, why) in ADDRESS_FIXES.items():
        print(f"   {path}: {why}")
    ours = run(analyse, cases)
    report("listserv.bounces.analyse.analyse", ours, verbose=args.verbose)
    total, same, named, failures = line_ending_check(analyse)
    print(f"line-endings CRLF/CR: {same}/{total} give the same report as LF, "
          f"{named}/{total} name an address", *failures[:20], sep="\n   ")
    if (CORPUS / "messages").is_dir():
        total, flagged = ordinary_mail_check(analyse)
        print(f"shared/corpus/messages: {total} files, no exception, taken for a bounce:"
              f" {len(flagged)}", *(flagged if args.verbose else []), sep="\n   ")
    report("flufl.bounce alone (for comparison)", run(flufl_alone, cases), verbose=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
