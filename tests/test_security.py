"""Security (SECURITY.md): hostile arguments and hostile data.

Input logs are written by upstream systems and, through them, by users (markets, categories, ids can
carry whatever a bug or an attacker put there). The job must never turn data into a path, never let
data become markup or script in the report, never load anything remote, never show reviewer or
creator ids, and never deserialise or evaluate input. One hostile day is run once through the CLI
(module fixture); each property is its own test against it.
"""

from __future__ import annotations

import ast
import datetime as dt
import io
import json
import re
import subprocess
import sys
import tokenize
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from jobs import warehouse as wh
from jobs.cli import main
from reports.pseudonym import PSEUDONYM_PREFIX
from tests.builders import appeal, audit, automated, decision, shift
from tests.conftest import DS, ts
from tests.inputs import write_day
from transforms.schemas import OUTPUT_TABLES

REPO = Path(__file__).resolve().parent.parent
RISKINSIGHT = str(Path(sys.executable).parent / "riskinsight")
RUN_TS = "2024-03-15T02:00:00Z"
SOURCE_PACKAGES = ("jobs", "transforms", "reports", "expectations")

SCRIPT_MARKET = "<script>alert(1)</script>"
ATTR_CATEGORY = '" onmouseover="x'
JS_URL = "javascript:alert(1)"
CLOSE_SCRIPT_CATEGORY = "</script><script>alert(2)</script>"
IMG_CATEGORY = "<img src=x onerror=alert(3)>"
PLOTLY_CATEGORY = "%{y}<a href='https://evil.example/'>click</a>"
COMMENT_QUEUE = "<!--<script>"
TRAVERSAL = ("../../etc", "/abs/evil", "..", "../../../../tmp/riskinsight-pwned", "C:\\Windows\\evil", "ds=2024-03-14/../x")
HOSTILE_STRINGS = (SCRIPT_MARKET, ATTR_CATEGORY, CLOSE_SCRIPT_CATEGORY, IMG_CATEGORY, PLOTLY_CATEGORY, COMMENT_QUEUE)
REVIEWER_IDS = ("../../etc/REVIEWER-7f3a9c", "/abs/REVIEWER-2b8e1d", "REVIEWER-c0ffee")
CREATOR_ID = "../../CREATOR-5d1e44"
PEOPLE_MARKERS = ("REVIEWER-7f3a9c", "REVIEWER-2b8e1d", "REVIEWER-c0ffee", "CREATOR-5d1e44")


# ------------------------------------------------------------------ --ds through the console script
@pytest.mark.parametrize("bad", [
    "../../etc/passwd",
    "2024-03-14/../../x",
    "/etc/cron.d",
    "2024-03-14; rm -rf /",
    "$(touch pwned)",
    "`touch pwned`",
    "2024-03-14\n",
    "2024-03-14\x00",
    "%2e%2e%2f%2e%2e",
    "２０２４-０３-１４",  # full-width digits
    "2024-02-30",
    "0000-01-01",
    "2024-W11-4",  # ISO week date: a real day, but not the YYYY-MM-DD form the contract names
    "20240314  ",  # basic format padded to 10 characters
])
def test_ds_accepts_only_a_yyyy_mm_dd_calendar_date(tmp_path: Path, bad: str) -> None:
    if "\x00" in bad:  # an argv string cannot hold NUL; the parser is checked directly instead
        with pytest.raises(SystemExit) as exc:
            main(["run", "--input", "in", "--output", "out", "--ds", bad])
        assert exc.value.code == 2
        return
    before = set(tmp_path.iterdir())
    proc = subprocess.run(
        [RISKINSIGHT, "run", "--input", "in", "--output", "out", "--ds", bad],
                          cwd=tmp_path, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, (bad, proc.returncode, proc.stdout, proc.stderr)
    assert "not a calendar date" in proc.stderr and "Traceback" not in proc.stderr
    assert set(tmp_path.iterdir()) == before  # nothing created, nothing run


def test_report_subcommand_ds_is_checked_the_same_way(tmp_path: Path) -> None:
    proc = subprocess.run(
        [RISKINSIGHT, "report", "--output", str(tmp_path), "--ds", "../../../etc/passwd"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "not a calendar date" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ the hostile day
def hostile_rows() -> dict[str, list[dict]]:
    at = lambda h, m=0: ts(h, m)
    markets = (SCRIPT_MARKET, JS_URL, *TRAVERSAL)
    categories = (ATTR_CATEGORY, JS_URL, CLOSE_SCRIPT_CATEGORY, IMG_CATEGORY, PLOTLY_CATEGORY, *TRAVERSAL)
    d = []
    for i in range(30):
        d.append(decision(
            decision_id=f"h-{i}", market=markets[i % len(markets)], policy_category=categories[i % len(categories)],
            queue=(COMMENT_QUEUE, "../../../../tmp/q", "//evil.example/q", JS_URL)[i % 4],
            reviewer_id=REVIEWER_IDS[i % 3], creator_id=CREATOR_ID if i % 2 else f"../creator-{i}",
            content_type="<svg onload=alert(4)>", detection_source=JS_URL,
            enqueued_at=at(2), decided_at=at(2, 1 + i % 50), content_created_at=at(1),
        ))
    # The worst-waiting queue row in the queue table is the script market's.
    d.append(decision(decision_id="h-slow", market=SCRIPT_MARKET, queue=COMMENT_QUEUE, reviewer_id=REVIEWER_IDS[0],
                      policy_category=ATTR_CATEGORY, creator_id=CREATOR_ID, enqueued_at=at(0), decided_at=at(5)))
    d += [automated(decision_id=f"h-auto-{i}", market=SCRIPT_MARKET, policy_category=CLOSE_SCRIPT_CATEGORY,
                    creator_id=CREATOR_ID) for i in range(3)]
    d.append(decision(decision_id="../../etc/passwd", decision_mode="<b>robot</b>"))  # quarantined, hostile key
    return {
        "decisions": d,
        "shifts": [shift(reviewer_id=r, team="<b>team</b>", site="https://evil.example/track.png") for r in REVIEWER_IDS],
        "qa_audits": [audit(audit_id=f"qa-{i}", reviewer_id=REVIEWER_IDS[i % 3], market=SCRIPT_MARKET, queue=COMMENT_QUEUE,
                            original_category=ATTR_CATEGORY, expected_category=ATTR_CATEGORY) for i in range(3)],
        "appeals": [appeal(appeal_id="ap-1", reviewer_id=REVIEWER_IDS[1], market=JS_URL, policy_category=IMG_CATEGORY,
                           appeal_outcome="overturned")],
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    inp, out = root / "in", root / "out"
    write_day(inp, DS, hostile_rows())
    config = root / "c.toml"
    config.write_text("[dq]\nquarantine_rate_critical = 0.5\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RISKINSIGHT_REVISION", "test")
        mp.setenv("RISKINSIGHT_PSEUDONYM_KEY", "security-test-key")
        assert main(["run", "--input", str(inp), "--output", str(out), "--ds", str(DS), "--config", str(config),
                     "--run-ts", RUN_TS]) == 0
    return out


def _report(out: Path, name: str = f"{DS}.html") -> str:
    return (out / "reports" / name).read_text(encoding="utf-8")


def test_paths_never_come_from_data(hostile: Path) -> None:
    ds = re.escape(f"ds={DS}")
    allowed = [
        rf"({'|'.join(OUTPUT_TABLES)})/{ds}/part-00000\.parquet",
        rf"_runs/{ds}/(manifest|dq)\.json",
        rf"_runs/{ds}/attempts/[0-9TZ]+-[0-9]+(-[0-9]+)?/(manifest|dq)\.json",
        rf"_locks/{ds}\.lock",
        rf"_versions/{ds}/[0-9TZ]+-[0-9]+(-[0-9]+)?-[0-9a-f]{{8}}/(({'|'.join(OUTPUT_TABLES)})/part-00000\.parquet|_runs/(manifest|dq)\.json)",
        rf"reports/({re.escape(DS.isoformat())}|index)\.html",
        r"_locks/index\.lock",  # the flock runs of different days take to rewrite the index
    ]
    files = sorted(str(p.relative_to(hostile)) for p in hostile.rglob("*") if not p.is_dir())
    stray = [f for f in files if not any(re.fullmatch(a, f) for a in allowed)]
    assert not stray, stray
    assert sorted(p.name for p in hostile.parent.iterdir()) == ["c.toml", "in", "out"]
    assert not Path("/tmp/riskinsight-pwned").exists() and not Path("/abs").exists()
    # The hostile values are data, and stayed data.
    vd = pl.read_parquet(wh.partition_dir(hostile, "violation_daily", DS) / "*.parquet")
    assert set(TRAVERSAL) <= set(vd["market"]) and set(TRAVERSAL) <= set(vd["policy_category"])
    q = pl.read_parquet(wh.partition_dir(hostile, "quarantine", DS) / "*.parquet")
    assert q["record_id"].to_list() == ["../../etc/passwd"]


class _Page(HTMLParser):
    """Every tag with its attributes, script bodies and text, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.styles: list[str] = []
        self.text: list[str] = []
        self._in: tuple[str, dict] | None = None
        self._buf: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag in ("script", "style"):
            self._in, self._buf = (tag, a), []

    handle_startendtag = handle_starttag

    def handle_endtag(self, tag):
        if self._in and tag == self._in[0]:
            body = "".join(self._buf)
            (self.scripts.append((self._in[1], body)) if tag == "script" else self.styles.append(body))
            self._in = None

    def handle_data(self, data):
        (self._buf if self._in else self.text).append(data)


def parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    p.close()
    return p


ALLOWED_TAGS = {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "div", "span", "nav", "a",
                "main", "section", "p", "b", "code", "table", "caption", "thead", "tbody", "tr", "th", "td", "footer",
                "script", "br", "dl", "dt", "dd"}
URL_ATTRS = {"src", "href", "action", "formaction", "data", "poster", "srcset", "background", "xlink:href", "ping",
             "manifest", "cite", "longdesc", "codebase", "icon", "lowsrc", "dynsrc", "archive", "profile"}


def test_report_escapes_every_string_from_data(hostile: Path) -> None:
    html = _report(hostile)
    for s in HOSTILE_STRINGS:
        assert s not in html, f"raw {s!r} in the report"
    page = parse(html)
    assert {t for t, _ in page.tags} <= ALLOWED_TAGS, {t for t, _ in page.tags} - ALLOWED_TAGS
    for tag, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)  # no event handler, from data or not
        for name, value in attrs.items():
            assert "alert(" not in (value or "") and "javascript:" not in (value or "").lower().replace(" ", ""), (tag, name, value)
    # Scripts: JSON islands that parse, the plotly bundle, and the one bootstrap; data cannot add one.
    kinds = []
    for attrs, body in page.scripts:
        assert "src" not in attrs
        if attrs.get("type") == "application/json":
            json.loads(body)
            kinds.append("json")
        else:
            kinds.append("code")
            assert "alert(" not in body or body.startswith("/**"), body[:200]
    assert kinds.count("code") == 2, kinds
    # Proof the payloads were rendered, as text: visible to the analyst, inert to the browser.
    text = "".join(page.text)
    for s in (SCRIPT_MARKET, ATTR_CATEGORY):
        assert s in text, s
    specs = [json.loads(body) for attrs, body in page.scripts if attrs.get("id", "").endswith("-spec")]
    spec_text = json.dumps(specs, ensure_ascii=False)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in spec_text  # plotly's pseudo-HTML sees entities, not tags
    assert "<a href=" not in spec_text and "<script" not in spec_text and "<img" not in spec_text


def test_index_escapes_and_links_only_local_reports(hostile: Path) -> None:
    page = parse(_report(hostile, "index.html"))
    hrefs = [a.get("href") for t, a in page.tags if t == "a"]
    assert hrefs == ["#main", f"{DS}.html"]  # the skip link, then the day's page
    assert {t for t, _ in page.tags} <= ALLOWED_TAGS


RESOURCE_KEYS = {"source", "src", "href", "url", "topojsonurl", "style", "sourcetype", "layers"}


def _remote(value: str) -> bool:
    v = value.strip().lower()
    return bool(re.match(r"^[a-z][a-z0-9+.\-]*:", v)) or v.startswith(("//", "\\\\", "/\\")) and not v.startswith("#")


@pytest.mark.parametrize("name", [f"{DS}.html", "index.html"])
def test_report_loads_no_remote_resource(hostile: Path, name: str) -> None:
    page = parse(_report(hostile, name))
    for tag, attrs in page.tags:
        assert tag not in {"link", "img", "iframe", "frame", "object", "embed", "base", "form", "video", "audio",
                           "source", "track", "svg", "image", "input"}, tag
        for attr, value in attrs.items():
            if attr in URL_ATTRS and value is not None:
                assert not _remote(value), (tag, attr, value)
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            pytest.fail("meta refresh")
        assert "url(" not in (attrs.get("style") or "").lower(), attrs
    csp = [a["content"] for t, a in page.tags if t == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy"]
    assert csp and "default-src 'none'" in csp[0] and "connect-src 'none'" in csp[0]
    for css in page.styles:
        assert "@import" not in css and not re.search(r"url\(\s*['\"]?(?!data:)", css), css[:200]
    # Figures: only trace types that draw from the spec itself (no map tiles, no topojson fetches),
    # and no string in a spec that is a URL. The inlined plotly bundle is code, checked by the CSP.
    for attrs, body in page.scripts:
        if attrs.get("type") != "application/json":
            continue
        spec = json.loads(body)

        def url_fields(x, key=""):
            if isinstance(x, dict):
                for k, v in x.items():
                    yield from url_fields(v, k)
            elif isinstance(x, list):
                for v in x:
                    yield from url_fields(v, key)
            elif isinstance(x, str) and key.lower() in RESOURCE_KEYS:
                yield key, x

        # Data text such as "//evil.example/q" may be shown as a label; only fields plotly fetches matter.
        for key, value in url_fields(spec):
            assert not _remote(value), (attrs.get("id"), key, value[:200])
        assert "topojsonURL" not in json.dumps(spec)
        for trace in spec.get("data", []) if isinstance(spec, dict) else []:
            assert trace.get("type") in {"scatter", "heatmap", "bar", "box", "histogram"}, trace.get("type")
        layout = spec.get("layout", {}) if isinstance(spec, dict) else {}
        assert not layout.get("images") and "mapbox" not in layout and "geo" not in layout
    config = json.loads(next(b for a, b in page.scripts if a.get("id") == "plotly-config")) if name != "index.html" else {}
    if config:
        assert config["typesetMath"] is False and config["showLink"] is False and config["showSendToCloud"] is False


def test_reviewer_and_creator_ids_never_appear_in_the_report(hostile: Path) -> None:
    for name in (f"{DS}.html", "index.html"):
        raw = _report(hostile, name)
        # Plain, entity-unescaped, and JSON-\u-unescaped views of the page.
        page = parse(raw)
        views = [raw.lower(), "".join(page.text).lower()]
        views += [json.dumps(json.loads(b), ensure_ascii=False).lower() for a, b in page.scripts if a.get("type") == "application/json"]
        for marker in PEOPLE_MARKERS:
            assert not any(marker.lower() in v for v in views), (name, marker)
    # ...while the reviewers are in the chart, under pseudonyms.
    assert PSEUDONYM_PREFIX in _report(hostile)


# ------------------------------------------------------------------ the code base
DANGEROUS_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib", "yaml", "jsonpickle"}
DANGEROUS_CALLS = {"eval", "exec", "compile", "__import__", "execfile", "input"}


def _py_files() -> list[Path]:
    files = [f for pkg in SOURCE_PACKAGES for f in sorted((REPO / pkg).rglob("*.py"))]
    assert len(files) > 20, files
    return files


def _code_only(source: str) -> str:
    """The source without comments and string literals, so docs that mention `eval(` do not count."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            out.append(tok.string)
        # f-strings (3.12 tokenizes them in parts) are not needed here: the project targets 3.11.
    return " ".join(out)


def test_no_pickle_eval_exec_unsafe_yaml_or_shell_in_the_code() -> None:
    pattern = re.compile(r"\bpickle\b|(?<![\w.])eval\s*\(|(?<![\w.])exec\s*\(|yaml\s*\.\s*(unsafe_)?load\s*\(|shell\s*=\s*True"
                         r"|os\s*\.\s*(system|popen)\s*\(|read_pickle|allow_pickle")
    hits = []
    for f in _py_files():
        for m in pattern.finditer(_code_only(f.read_text(encoding="utf-8"))):
            hits.append(f"{f.relative_to(REPO)}: {m.group(0)}")
    assert not hits, hits


def test_no_deserialising_module_or_dynamic_code_call_in_the_ast() -> None:
    hits = []
    for f in _py_files():
        tree = ast.parse(f.read_text(encoding="utf-8"), filename=str(f))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                hits += [f"{f.name}: import {a.name}" for a in node.names if a.name.split(".")[0] in DANGEROUS_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in DANGEROUS_MODULES:
                hits.append(f"{f.name}: from {node.module}")
            elif isinstance(node, ast.Call):
                if isinstance(node.func, ast.Name) and node.func.id in DANGEROUS_CALLS:
                    hits.append(f"{f.name}:{node.lineno}: {node.func.id}()")
                if any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords):
                    hits.append(f"{f.name}:{node.lineno}: shell=True")
    assert not hits, hits


def test_config_is_parsed_with_tomllib_only() -> None:
    tree = ast.parse((REPO / "jobs" / "config.py").read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert "tomllib" in imported
    assert not imported & {"toml", "tomli", "yaml", "configparser", "json", "pickle"}, imported
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert calls & {"tomllib.loads", "tomllib.load"}


def test_config_values_are_data_not_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A value that looks like code stays a string, and a string where a number belongs is refused."""
    marker = tmp_path / "pwned"
    config = tmp_path / "c.toml"
    config.write_text(f"[trends]\nzscore_threshold = \"__import__('os').system('touch {marker}')\"\n")
    write_day(tmp_path / "in", DS, {})
    capsys.readouterr()
    assert main(["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--ds", str(DS),
                 "--config", str(config), "--no-report"]) == 2
    assert "must be a number" in capsys.readouterr().err
    assert not marker.exists()
    from jobs.config import load_config

    config.write_text(f"[report]\npseudonym_key = \"__import__('os').system('touch {marker}')\"\n")
    assert load_config(config).pseudonym_key.startswith("__import__")
    assert not marker.exists()


def test_hostile_ids_in_the_manifest_are_not_paths(hostile: Path) -> None:
    """Paths the job writes come from (output, table, ds) only: the manifest names input partitions
    built the same way, never a value read from a row."""
    manifest = wh.read_json(wh.runs_dir(hostile, DS) / "manifest.json")
    for t, info in manifest["inputs"].items():
        assert Path(info["path"]) == wh.partition_dir(hostile.parent / "in", t, DS)
    assert dt.date.fromisoformat(manifest["ds"]) == DS
