"""The members' archive at 50,000 posts: import rate, search latency, size per post.

    PYTHONPATH=$PWD python3 bench/archive.py [--posts 50000] [--queries 1000] [--seed 1]

Generates German posts (a vocabulary with umlauts and ß, words drawn with a
Zipf-like weight so a few are in almost every post and most are rare; 60 to
240 words each, one in ten with a small PDF attachment) into an mbox file,
imports it with the real ``listserv archive import`` path
(``archive.mbox.import_mbox``: parse, extract, seal, index, batches of 500),
then runs searches of one to three words through ``archive.browse.search``
(count of all hits + the first page of 10, bm25-ranked with snippets), the
words drawn with the same weights, so frequent words are searched often.
Prints the import rate, search p50/p95/p99/max and the database size per
post (after a checkpoint), all in a temporary directory (or ``--dir``, kept:
a second run there only searches).
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from listserv.archive import browse
from listserv.archive.mbox import import_mbox
from listserv.archive.query import Page
from listserv.config import ListConfig
from listserv.store.database import Store

LIST = "soziale.arbeit.an.schulen@gelsenkirchen.de"
WORDS = """
Fachtag Einladung Anmeldung Übergänge Schule Schulsozialarbeit Kolleginnen Kollegen Netzwerk
Treffen Termin Straße Größe Grüße Jugendhilfe Jugendamt Elternabend Förderung Träger Stadt
Gelsenkirchen Arbeitskreis Protokoll Tagesordnung Fortbildung Workshop Referentin Vortrag
Kinderschutz Gefährdung Beratung Sprechstunde Mädchen Jungen Schülerinnen Schüler Klasse
Grundschule Gesamtschule Realschule Gymnasium Förderschule Offene Ganztag Betreuung Mittagessen
Übergang Berufsorientierung Praktikum Ausbildung Bewerbung Zeugnis Noten Prüfung Ferien
Sommerferien Herbstferien Weihnachtsfeier Sommerfest Grillen Kaffee Kuchen Raum Gebäude Aula
Turnhalle Schulhof Pausenhof Konflikt Streit Mobbing Gewalt Prävention Projekt Antrag
Förderantrag Fördermittel Budget Rechnung Formular Datenschutz Einwilligung Schweigepflicht
Dokumentation Fallbesprechung Supervision Intervision Teamsitzung Dienstbesprechung Leitung
Koordination Verwaltung Schulleitung Lehrkräfte Sozialpädagogik Psychologie Familie Eltern
Mütter Väter Geschwister Großeltern Migration Sprache Sprachförderung Deutschkurs Integration
Teilhabe Inklusion Behinderung Assistenz Schulbegleitung Gesundheit Ernährung Bewegung Sport
Musik Kunst Theater Medien Handy Internet Cybermobbing Sucht Prävention Alkohol Rauchen Drogen
Beratungsstelle Erziehungsberatung Kinderarzt Polizei Ordnungsamt Gericht Vormundschaft
Pflegefamilie Heim Wohngruppe Obdach Armut Bildungspaket Teilhabepaket Schulmaterial
Klassenfahrt Ausflug Zoo Museum Bücherei Stadtteil Quartier Nachbarschaft Ehrenamt Verein
Sportverein Kirche Moschee Jugendzentrum Spielplatz Öffnungszeiten Anfahrt Parkplätze
Straßenbahn Bushaltestelle Hauptbahnhof Rathaus Bildungsbüro Schulamt Bezirksregierung
Ministerium Erlass Richtlinie Gesetz Verordnung Frist Rückmeldung Teilnahme Absage Zusage
Verschiebung Ausfall Krankheit Vertretung Urlaub Elternzeit schön schon größer grün weiß heiß
süß Fuß Maß Spaß Gruß groß bloß außen draußen
""".split()  # noqa: SIM905 (a word list)
FILLER = """
und der die das mit für auf im am zum zur von bei ist sind wir ihr sie es ein eine
""".split()  # noqa: SIM905 (a word list)


def weights(n: int) -> list[float]:
    return [1.0 / (rank + 1) ** 0.9 for rank in range(n)]


def generate(path: Path, count: int, rng: random.Random) -> None:
    w = weights(len(WORDS))
    box = mailbox.mbox(path)
    box.lock()
    for n in range(count):
        words = rng.choices(WORDS, w, k=rng.randint(60, 240))
        text = " ".join(word if rng.random() > 0.3 else f"{word} {rng.choice(FILLER)}"
                        for word in words)
        msg = EmailMessage()
        msg["From"] = f"Person {n % 400} <person{n % 400}@schule{n % 37}.example>"
        msg["To"] = LIST
        msg["Subject"] = " ".join(rng.choices(WORDS, w, k=rng.randint(2, 6)))
        msg["Date"] = f"Mon, {1 + n % 28:02d} {('Jan', 'Mar', 'Jun', 'Sep', 'Nov')[n % 5]}" \
                      f" {2016 + n % 10} 09:00:00 +0100"
        msg["Message-ID"] = f"<bench-{n}@schule.example>"
        msg.set_content("Liebe Kolleginnen und Kollegen,\n\n" + text + "\n\nViele Grüße\n")
        if n % 10 == 0:
            msg.add_attachment(b"%PDF-1.4 " + bytes(rng.getrandbits(8) for _ in range(2000)),
                               maintype="application", subtype="pdf", filename="Flyer.pdf")
        box.add(msg.as_bytes())
    box.flush()
    box.unlock()
    box.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> None:
    rng = random.Random(args.seed)
    mlist = ListConfig(address=LIST, display_name="Netzwerk", moderators=("k@d.de",))
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.dir or scratch
        box = Path(tmp) / "Gesendet.mbox"
        database = Path(tmp) / "var" / "listserv.sqlite3"
        reuse = database.exists()
        if not reuse:
            started = time.perf_counter()
            generate(box, args.posts, rng)
            print(f"generated {args.posts} posts ({box.stat().st_size / 1e6:.0f} MB mbox) in"
                  f" {time.perf_counter() - started:.0f} s")
        store = await Store.open(database)
        try:
            if reuse:
                imported = (await store.fetchall("SELECT count(*) FROM archive"))[0][0]
                print(f"reusing {database}: {imported} posts")
            else:
                started = time.perf_counter()
                imported, skipped = await import_mbox(store, mlist, box, datetime.now(UTC))
                took = time.perf_counter() - started
                print(f"import: {imported} posts in {took:.1f} s = {imported / took:.0f}"
                      f" posts/s (skipped {sum(skipped.values())})")
            w = weights(len(WORDS))
            times, totals = [], []
            for _ in range(args.queries):
                words = " ".join(rng.choices(WORDS, w, k=rng.choice((1, 1, 2, 3))))
                started = time.perf_counter()
                hits = await browse.search(store.reader, LIST, words, Page(1, 10))
                times.append((time.perf_counter() - started) * 1000)
                totals.append(hits.total if hits else 0)
            print(f"search ({args.queries} queries, 1-3 words, page of 10 + total):"
                  f" p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 0.95):.1f} ms,"
                  f" p99 {percentile(times, 0.99):.1f} ms, max {max(times):.1f} ms;"
                  f" hits per query median {statistics.median(totals):.0f}, max {max(totals)}")
            async with store.reader.execute("PRAGMA wal_checkpoint(TRUNCATE)") as cur:
                await cur.fetchall()
        finally:
            await store.close()
        size = sum(p.stat().st_size for p in (Path(tmp) / "var").glob("listserv.sqlite3*"))
        print(f"database: {size / 1e6:.0f} MB = {size / imported / 1024:.1f} KiB per post"
              + (f" (mbox {box.stat().st_size / imported / 1024:.1f} KiB per post)"
                 if box.exists() else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default="", help="keep the mbox and database here; a second"
                        " run with the same --dir only searches")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
