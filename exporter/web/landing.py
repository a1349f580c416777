"""The HTML page at ``/``: where to find things, and each target's last result."""

from __future__ import annotations

import html
import time
from collections.abc import Sequence

from exporter.runtime.store import TargetRecord

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
.ok { color: #1a7f37; } .failed { color: #cf222e; } .pending { color: #777; }
"""


def landing_page(records: Sequence[TargetRecord], *, version: str, now: float | None = None) -> str:
    now = time.time() if now is None else now
    rows = "\n".join(_row(record, now) for record in records)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>smtp-tls-exporter</title><style>{_STYLE}</style></head>
<body>
<h1>smtp-tls-exporter {html.escape(version)}</h1>
<p><a href="/metrics">Metrics</a> · <a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></p>
<h2>Targets ({len(records)})</h2>
<table>
<tr><th>Target</th><th>Server</th><th>TLS</th><th>Last probe</th><th>Result</th>
<th>Negotiated</th><th>Certificate expires in</th></tr>
{rows}
</table>
</body></html>
"""


def _row(record: TargetRecord, now: float) -> str:
    target = record.config
    result = record.result
    cells = [
        html.escape(target.name),
        html.escape(target.spec.endpoint),
        html.escape(target.spec.tls.value),
    ]
    if result is None:
        cells += ["not yet", '<span class="pending">pending</span>', "", ""]
    else:
        if result.success:
            verdict = '<span class="ok">success</span>'
        else:
            verdict = "<br>".join(
                f'<span class="failed">{html.escape(failure.reason.value)}</span> '
                f"({html.escape(failure.phase.value)}): {html.escape(failure.detail)}"
                for failure in result.failures
            )
        negotiated = ""
        expires = ""
        if result.tls is not None:
            negotiated = html.escape(f"{result.tls.version} {result.tls.cipher} ({result.tls.cipher_bits} bits)")
            leaf = result.tls.leaf
            days_left = leaf.days_left(now) if leaf is not None else None
            if days_left is not None:
                expires = f"{days_left:.1f} days"
        cells += [f"{now - result.finished_at:.0f} s ago", verdict, negotiated, expires]
    return "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
