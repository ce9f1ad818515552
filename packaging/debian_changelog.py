#!/usr/bin/env python3
"""Writes the Debian changelog of the .deb from CHANGELOG.md (Keep a Changelog format).

    debian_changelog.py CHANGELOG.md VERSION MAINTAINER > changelog

Debian packages carry /usr/share/doc/<package>/changelog.gz in Debian's own format (lintian
checks it); CHANGELOG.md stays the one place people edit. Fails when the newest section is not
VERSION, so a release cannot ship with a changelog that forgot it.
"""

import re
import sys
import textwrap
from datetime import datetime, timezone

HEADING = re.compile(r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})\s*$")


def sections(text):
    """Yields (version, date, [bullet text]) per released section, newest first."""
    current = None
    prefix = ""
    for line in text.splitlines():
        m = HEADING.match(line)
        if m:
            if current:
                yield current
            current = (m["version"], m["date"], [])
            prefix = ""
            continue
        if line.startswith("## "):
            # "## [Unreleased]" and anything else that is not a release ends a section.
            if current:
                yield current
            current = None
            continue
        if current is None:
            continue
        bullets = current[2]
        if line.startswith("### "):
            # Bullets under "### Fixed", "### Known issues"… say so; "### Added" is the default.
            category = line[4:].strip()
            prefix = "" if category == "Added" else category + ": "
            continue
        if line.startswith("- "):
            bullets.append(prefix + line[2:].strip())
        elif line.startswith("  ") and bullets and line.strip():
            bullets[-1] += " " + line.strip()
    if current:
        yield current


def entry(package, version, date, bullets, maintainer):
    when = datetime.strptime(date, "%Y-%m-%d").replace(hour=12, tzinfo=timezone.utc)
    lines = [f"{package} ({version}) unstable; urgency=medium", ""]
    for b in bullets or ["Release " + version + "."]:
        b = b.replace("`", "")
        lines += textwrap.wrap(b, width=76, initial_indent="  * ", subsequent_indent="    ",
                              break_on_hyphens=False)
    lines += ["", f" -- {maintainer}  {when.strftime('%a, %d %b %Y %H:%M:%S +0000')}", ""]
    return "\n".join(lines)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    path, version, maintainer = sys.argv[1:]
    with open(path, encoding="utf-8") as f:
        found = list(sections(f.read()))
    if not found:
        sys.exit(f"{path}: no '## [x.y.z] - YYYY-MM-DD' section")
    if found[0][0] != version:
        sys.exit(f"{path}: newest section is {found[0][0]}, Cargo.toml says {version}")
    sys.stdout.write("\n".join(entry("alarm-tray", v, d, b, maintainer) for v, d, b in found))


if __name__ == "__main__":
    main()
