//! The report as PDF, written with `pdf-writer` (typst's PDF writer: four small
//! dependencies the tree already has, no browser, no font files). Text is set in the PDF's
//! built-in Helvetica with WinAnsi encoding, so a viewer needs nothing embedded; characters
//! outside WinAnsi are written as `?`.
//!
//! A4 portrait. The lines are laid out first, then cut into pages, so each page can say
//! "page 2 of 5"; every page repeats the app's name, the range and the site's time zone.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use super::{duration_text, Report};

const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 42.0;
/// The top of the body, below the running header.
const BODY_TOP: f32 = HEIGHT - MARGIN - 28.0;
/// The bottom of the body, above the footer.
const BODY_BOTTOM: f32 = MARGIN + 22.0;

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Title,
    Heading,
    Bold,
    Text,
    Small,
}

impl Style {
    fn size(self) -> f32 {
        match self {
            Style::Title => 18.0,
            Style::Heading => 12.0,
            Style::Bold | Style::Text => 9.5,
            Style::Small => 8.0,
        }
    }
    fn font(self) -> &'static [u8] {
        match self {
            Style::Title | Style::Heading | Style::Bold => b"F2",
            Style::Text | Style::Small => b"F1",
        }
    }
}

/// One line of the flow: cells at x positions, or a rule across the page.
struct Line {
    style: Style,
    cells: Vec<(f32, String)>,
    /// Space above the line, in points.
    before: f32,
    rule: bool,
    /// Starts a new page (each sensor after the cover begins at a page top when it would
    /// otherwise be split right after its heading).
    keep_with_next: usize,
}

impl Line {
    fn text(style: Style, text: impl Into<String>) -> Line {
        Line {
            style,
            cells: vec![(MARGIN, text.into())],
            before: 0.0,
            rule: false,
            keep_with_next: 0,
        }
    }
    fn cells(style: Style, cells: Vec<(f32, String)>) -> Line {
        Line {
            style,
            cells,
            before: 0.0,
            rule: false,
            keep_with_next: 0,
        }
    }
    fn height(&self) -> f32 {
        self.before + self.style.size() * 1.35
    }
}

/// WinAnsi (Windows-1252) bytes of `s`: the encoding of the built-in fonts.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '€' => 0x80,
            '…' => 0x85,
            '‘' => 0x91,
            '’' => 0x92,
            '“' => 0x93,
            '”' => 0x94,
            '•' => 0x95,
            '–' => 0x96,
            '—' => 0x97,
            '\u{2009}' | '\u{202f}' => b' ',
            _ => b'?',
        })
        .collect()
}

/// Splits `s` into pieces of at most `n` characters, at spaces where it can.
fn wrap(s: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for word in s.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > n {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            let head: String = word.chars().take(n).collect();
            word = word.chars().skip(n).collect();
            out.push(head);
        }
        if cur.is_empty() {
            cur = word;
        } else if cur.chars().count() + 1 + word.chars().count() <= n {
            cur.push(' ');
            cur.push_str(&word);
        } else {
            out.push(std::mem::replace(&mut cur, word));
        }
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}

fn num(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(v) => format!("{v:.2} {unit}").trim_end().to_string(),
        None => "–".into(),
    }
}

/// The report's lines, in order.
fn flow(r: &Report) -> Vec<Line> {
    let mut l = Vec::new();
    l.push(Line::text(Style::Title, "Shift report"));
    let mut t = Line::text(
        Style::Text,
        format!(
            "From {} to {} ({})",
            r.time(r.from_ms),
            r.time(r.to_ms),
            r.tz_name
        ),
    );
    t.before = 6.0;
    l.push(t);
    l.push(Line::text(
        Style::Text,
        format!(
            "Made {} by Alarm Tray {}",
            r.time(r.generated_ms),
            env!("CARGO_PKG_VERSION")
        ),
    ));
    // "Audit trail intact (12,345 records)" or what is wrong, as `audit verify` says it.
    let mut chars = r.audit.chars();
    let audit: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    let mut a = Line::text(Style::Bold, audit);
    a.before = 8.0;
    l.push(a);
    l.push(Line::text(
        Style::Small,
        format!(
            "Mean kinetic temperature with dH/R = {:.0} K. Time outside a limit counts each reading until the next one, not across gaps.",
            r.mkt_dh_r
        ),
    ));
    let alarms: usize = r.sensors.iter().map(|s| s.alarms.len()).sum();
    l.push(Line::text(
        Style::Text,
        format!(
            "{} sensor series, {} alarms in the range.",
            r.sensors.len(),
            alarms
        ),
    ));
    if r.sensors.is_empty() {
        let mut n = Line::text(Style::Text, "No readings and no alarms in this range.");
        n.before = 12.0;
        l.push(n);
    }
    for s in &r.sensors {
        let unit = s.unit.clone().unwrap_or_default();
        let title = match (&s.name, &s.quantity) {
            (Some(n), Some(q)) => format!("{n} — {q} ({})", s.sensor),
            (Some(n), None) => format!("{n} ({})", s.sensor),
            (None, Some(q)) => format!("{} — {q}", s.sensor),
            (None, None) => s.sensor.clone(),
        };
        let mut h = Line::text(Style::Heading, title);
        h.before = 14.0;
        h.keep_with_next = 3;
        l.push(h);
        let mut rule = Line::text(Style::Small, "");
        rule.rule = true;
        l.push(rule);
        let mut figures = format!(
            "{} readings   min {}   max {}   mean {}",
            s.readings,
            num(s.min, &unit),
            num(s.max, &unit),
            num(s.mean, &unit)
        );
        if let Some(m) = s.mkt {
            figures.push_str(&format!("   MKT {m:.2} °C"));
        }
        l.push(Line::text(Style::Text, figures));
        if s.limits.is_empty() {
            l.push(Line::text(Style::Small, "No rule sets a limit for it."));
        }
        for lim in &s.limits {
            let bound = match (lim.low, lim.high) {
                (Some(lo), Some(hi)) => format!("outside {lo} … {hi} {unit}"),
                (Some(lo), None) => format!("below {lo} {unit}"),
                (None, Some(hi)) => format!("above {hi} {unit}"),
                (None, None) => String::new(),
            };
            l.push(Line::text(
                Style::Text,
                format!(
                    "Limit “{}”: {} for {}",
                    lim.rule,
                    bound.trim_end(),
                    duration_text(lim.outside_ms)
                ),
            ));
        }
        if s.alarms.is_empty() {
            l.push(Line::text(Style::Small, "No alarms in the range."));
            continue;
        }
        let cols = [MARGIN, 120.0, 198.0, 250.0, 340.0, 462.0];
        let mut head = Line::cells(
            Style::Bold,
            [
                "Raised",
                "Cleared",
                "Lasted",
                "Alarm",
                "Acknowledged",
                "Comment",
            ]
            .iter()
            .zip(cols)
            .map(|(t, x)| (x, t.to_string()))
            .collect(),
        );
        head.before = 5.0;
        head.keep_with_next = 1;
        l.push(head);
        for a in &s.alarms {
            let ack = match (a.acknowledged_ms, &a.acknowledged_user) {
                (Some(t), Some(u)) => format!("{} by {u}", r.time(t)),
                (Some(t), None) => r.time(t),
                _ => "not acknowledged".into(),
            };
            let what = format!("{} {}", a.severity, a.condition.clone().unwrap_or_default());
            let col_what = wrap(&what, 18);
            let col_ack = wrap(&ack, 26);
            let col_comment = wrap(a.acknowledged_comment.as_deref().unwrap_or(""), 26);
            let rows = col_what.len().max(col_ack.len()).max(col_comment.len());
            for i in 0..rows {
                let mut cells = Vec::new();
                if i == 0 {
                    cells.push((cols[0], r.time(a.raised_ms)));
                    cells.push((
                        cols[1],
                        a.cleared_ms
                            .map(|c| r.time(c))
                            .unwrap_or_else(|| "active".into()),
                    ));
                    cells.push((cols[2], duration_text(a.duration_ms)));
                }
                for (x, col) in [
                    (cols[3], &col_what),
                    (cols[4], &col_ack),
                    (cols[5], &col_comment),
                ] {
                    if let Some(t) = col.get(i) {
                        cells.push((x, t.clone()));
                    }
                }
                let mut line = Line::cells(Style::Small, cells);
                line.keep_with_next = rows - 1 - i;
                l.push(line);
            }
        }
    }
    l
}

/// Cuts the flow into pages.
fn paginate(lines: Vec<Line>) -> Vec<Vec<Line>> {
    let mut pages: Vec<Vec<Line>> = vec![Vec::new()];
    let mut y = BODY_TOP;
    let heights: Vec<f32> = lines.iter().map(Line::height).collect();
    for (i, line) in lines.into_iter().enumerate() {
        // The line and the ones it must stay with.
        let need: f32 = heights[i..(i + 1 + line.keep_with_next).min(heights.len())]
            .iter()
            .sum();
        let page_has_body = pages.last().is_some_and(|p| !p.is_empty());
        if y - need < BODY_BOTTOM && page_has_body {
            pages.push(Vec::new());
            y = BODY_TOP;
        }
        y -= line.height();
        if let Some(p) = pages.last_mut() {
            p.push(line);
        }
    }
    pages
}

/// The PDF's bytes.
pub fn render(r: &Report) -> Vec<u8> {
    let pages = paginate(flow(r));
    let n = pages.len();
    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 10;
    let page_ids: Vec<Ref> = (0..n)
        .map(|i| Ref::new(first_page + 2 * i as i32))
        .collect();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().copied())
        .count(n as i32);
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info)
        .title(pdf_writer::TextStr("Alarm Tray shift report"))
        .creator(pdf_writer::TextStr("Alarm Tray"));

    let header = format!(
        "Alarm Tray — shift report {} to {} ({})",
        r.time(r.from_ms),
        r.time(r.to_ms),
        r.tz_name
    );
    for (i, lines) in pages.into_iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut c = Content::new();
        // Running header and footer.
        text(&mut c, Style::Small, MARGIN, HEIGHT - MARGIN, &header);
        c.set_line_width(0.5);
        c.move_to(MARGIN, HEIGHT - MARGIN - 6.0);
        c.line_to(WIDTH - MARGIN, HEIGHT - MARGIN - 6.0);
        c.stroke();
        let footer = format!("Page {} of {}", i + 1, n);
        text(&mut c, Style::Small, WIDTH - MARGIN - 52.0, MARGIN, &footer);
        text(&mut c, Style::Small, MARGIN, MARGIN, "Alarm Tray");

        let mut y = BODY_TOP;
        for line in lines {
            y -= line.height();
            if line.rule {
                c.set_line_width(0.3);
                c.move_to(MARGIN, y + line.style.size());
                c.line_to(WIDTH - MARGIN, y + line.style.size());
                c.stroke();
                continue;
            }
            for (x, t) in &line.cells {
                text(&mut c, line.style, *x, y, t);
            }
        }
        let data = c.finish();
        let mut page = pdf.page(page_id);
        page.media_box(Rect::new(0.0, 0.0, WIDTH, HEIGHT));
        page.parent(tree);
        page.contents(content_id);
        {
            let mut res = page.resources();
            let mut fonts = res.fonts();
            fonts.pair(Name(b"F1"), regular);
            fonts.pair(Name(b"F2"), bold);
        }
        page.finish();
        pdf.stream(content_id, &data);
    }
    pdf.finish()
}

fn text(c: &mut Content, style: Style, x: f32, y: f32, s: &str) {
    if s.is_empty() {
        return;
    }
    c.begin_text();
    c.set_font(Name(style.font()), style.size());
    c.next_line(x, y);
    c.show(Str(&win_ansi(s)));
    c.end_text();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_ansi_keeps_degrees_and_dashes() {
        assert_eq!(win_ansi("8 °C — ok"), b"8 \xb0C \x97 ok".to_vec());
        assert_eq!(win_ansi("ΔH"), b"?H".to_vec());
    }

    #[test]
    fn wrap_breaks_at_spaces_and_splits_long_words() {
        assert_eq!(wrap("door left open", 9), vec!["door left", "open"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), vec![""]);
    }
}
