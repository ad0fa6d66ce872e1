// The sample viewer: filters, sorting and a pager over the rows embedded as JSON in the page.
// Every text from the data is set with textContent (never innerHTML): hypotheses are untrusted.
"use strict";

// The rows are gzipped JSON in base64 (view.py: packed), unpacked by the browser itself.
async function unpack(element) {
  const text = atob(element.textContent.trim());
  const bytes = new Uint8Array(text.length);
  for (let k = 0; k < text.length; k++) bytes[k] = text.charCodeAt(k);
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  return JSON.parse(await new Response(stream).text());
}

function viewer(data) {
  const PAGE_SIZE = 100;
  const compare = data.kind === "compare";
  const rows = data.rows;
  const state = { status: "", cause: "", lang: "", change: "", text: "", sort: "order", page: 0 };

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function sides(row) {
    return compare ? [row.A, row.B].filter(Boolean) : [row];
  }

  // --- filtering and sorting ---------------------------------------------------------------------

  function haystack(row) {
    const texts = [row.i, row.r];
    for (const s of sides(row)) texts.push(s.h, s.r, s.t);
    return texts.filter(Boolean).join("\n").toLowerCase();
  }

  function matches(row) {
    const own = sides(row);
    if (state.status && !own.some((s) => s.s === state.status)) return false;
    if (state.cause !== "" && !own.some((s) => s.c === Number(state.cause))) return false;
    if (state.lang && (row.l || "none") !== state.lang) return false;
    if (state.change && row.k !== state.change) return false;
    if (state.text && !haystack(row).includes(state.text.toLowerCase())) return false;
    return true;
  }

  function byKey(key, descending) {
    return (a, b) => {
      const x = key(a), y = key(b);
      if (x === undefined || x === null) return y === undefined || y === null ? 0 : 1;
      if (y === undefined || y === null) return -1;
      return descending ? y - x : x - y;
    };
  }

  const SORTS = compare ? [
    ["order", "file order", null],
    ["worse", "worse first (B vs A)", byKey((r) => r.g, false)],
    ["better", "better first (B vs A)", byKey((r) => r.g, true)],
  ] : [
    ["order", "file order", null],
    ["low", "score, low first", byKey((r) => r.v, false)],
    ["high", "score, high first", byKey((r) => r.v, true)],
  ];

  function selected() {
    const found = rows.filter(matches);
    const order = (SORTS.find(([id]) => id === state.sort) || SORTS[0])[2];
    return order ? found.sort(order) : found;
  }

  // The view is in the address (#status=failed&sort=high&page=2): a link shows what one saw.
  function readAddress() {
    const params = new URLSearchParams(location.hash.slice(1));
    for (const key of Object.keys(state)) {
      if (!params.has(key)) continue;
      state[key] = key === "page" ? Math.max(0, (parseInt(params.get(key), 10) || 1) - 1) : params.get(key);
    }
  }

  function writeAddress() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state)) {
      if (key === "page" ? value > 0 : value !== "" && !(key === "sort" && value === "order")) {
        params.set(key, key === "page" ? value + 1 : value);
      }
    }
    const hash = params.toString();
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  // --- controls ----------------------------------------------------------------------------------

  function counts(values) {
    const seen = new Map();
    for (const v of values) seen.set(v, (seen.get(v) || 0) + 1);
    return [...seen.entries()].sort((a, b) => b[1] - a[1]);
  }

  function select(label, key, options) {
    const wrap = el("label", null, label + " ");
    const box = el("select");
    box.dataset.key = key;
    for (const [value, text] of options) {
      const option = el("option", null, text);
      option.value = value;
      box.append(option);
    }
    box.value = state[key];
    box.addEventListener("change", () => { state[key] = box.value; state.page = 0; render(); });
    wrap.append(box);
    return wrap;
  }

  function controls() {
    const nav = document.getElementById("controls");
    const all = rows.flatMap(sides);
    const statuses = counts(all.map((s) => s.s)).map(([s, n]) => [s, `${s} (${n})`]);
    const causes = counts(all.filter((s) => s.c !== undefined).map((s) => s.c))
      .map(([c, n]) => [String(c), `${data.causes[c]} (${n})`]);
    const langs = counts(rows.map((r) => r.l || "none")).map(([l, n]) => [l, `${l} (${n})`]);
    nav.append(select("status", "status", [["", "all"], ...statuses]));
    nav.append(select("cause", "cause", [["", "all"], ...causes]));
    nav.append(select("language", "lang", [["", "all"], ...langs]));
    if (compare) {
      const changes = counts(rows.map((r) => r.k)).map(([k, n]) => [k, `${k} (${n})`]);
      nav.append(select("change", "change", [["", "all"], ...changes]));
    }
    nav.append(select("sort", "sort", SORTS.map(([id, label]) => [id, label])));
    const search = el("input");
    search.type = "search";
    search.value = state.text;
    search.placeholder = "search id or text";
    search.addEventListener("input", () => { state.text = search.value.trim(); state.page = 0; render(); });
    nav.append(search);
  }

  // --- one sample --------------------------------------------------------------------------------

  function mark(className, text, title) {
    const span = el("span", className, text);
    if (title) span.title = title;
    return span;
  }

  function line(tag, className) {
    const div = el("div", "line " + className);
    div.append(el("span", "tag", tag));
    return div;
  }

  function alignedLines(segments) {
    const ref = line("REF", "ref"), hyp = line("HYP", "hyp");
    for (const seg of segments) {
      if (typeof seg === "string") {
        ref.append(el("span", "eq", seg));
        hyp.append(el("span", "eq", seg));
      } else if (seg[0] === "s") {
        ref.append(mark("sub", seg[1], "substituted by: " + seg[2]));
        hyp.append(mark("sub", seg[2], "substitutes: " + seg[1]));
      } else if (seg[0] === "d") {
        ref.append(mark("del", seg[1], "deleted"));
        hyp.append(mark("gap", "␣", "deleted: " + seg[1]));
      } else {
        ref.append(mark("gap", "␣", "inserted: " + seg[1]));
        hyp.append(mark("ins", seg[1], "inserted"));
      }
    }
    return [ref, hyp];
  }

  function textLine(tag, className, text) {
    const div = line(tag, className);
    div.append(el("span", "eq", text === undefined ? "—" : text));
    return div;
  }

  function texts(s, reference) {
    const box = el("div", "texts");
    if (s.al) {
      box.append(...alignedLines(s.al));
      const raw = el("details");
      raw.append(el("summary", null, "raw text"));
      raw.append(textLine("ref", "raw", s.r || reference), textLine("hyp", "raw", s.h));
      if (s.t) raw.append(textLine("reply", "raw", s.t));
      box.append(raw);
    } else if (s.r || reference || s.h) {
      box.append(textLine("REF", "ref", s.r || reference), textLine("HYP", "hyp", s.h));
    }
    if (!s.al) {
      if (s.t) box.append(textLine("reply", "raw", s.t));
      if (s.nh !== undefined || s.nr !== undefined) {  // each is left out where it equals the text above
        const [h, r] = [s.nh ?? s.h ?? "—", s.nr ?? s.r ?? reference ?? "—"];
        box.append(textLine("compared", "raw", `${h}  vs  ${r}`));
      }
    }
    if (s.p) {  // the rendered prompt this sample was sent
      const sent = el("details");
      sent.append(el("summary", null, "prompt sent"), textLine("sent", "raw", s.p));
      box.append(sent);
    }
    if (s.x) box.append(textLine("why", "why", s.x));
    for (const [name, value, why] of s.sec || []) {
      box.append(textLine(name, "why", `${value === null || value === undefined ? "—" : value}${why ? " — " + why : ""}`));
    }
    return box;
  }

  function verdict(s) {
    const box = el("div", "verdict");
    box.append(el("span", "badge s-" + s.s, s.s));
    if (s.v !== undefined) box.append(el("div", "score", `${s.m || ""} ${s.v.toFixed(2)}`));
    if (s.d) box.append(el("div", "detail", s.d));
    if (s.lt !== undefined) box.append(el("div", "detail", `latency ${s.lt.toFixed(2)} s`));
    if (s.e !== undefined || s.c !== undefined) box.append(el("div", "cause", s.e ?? data.causes[s.c]));
    return box;
  }

  function player(src, label) {
    const wrap = el("div", "player");
    if (label) wrap.append(el("div", "detail", label));
    const audio = el("audio");
    audio.controls = true;
    audio.preload = "none";
    audio.src = src;
    wrap.append(audio);
    return wrap;
  }

  function head(row, number) {
    const cell = el("td", "head");
    cell.append(el("div", "num", "#" + number), el("div", "id", row.i));
    if (row.l) cell.append(el("div", "lang", row.l));
    if (row.a !== undefined) cell.append(player(data.base + row.a));
    for (const s of sides(row)) if (s.ga) cell.append(player(s.ga, "model's speech"));
    return cell;
  }

  function sampleCell(s, reference) {
    const cell = el("td", "sample");
    if (!s) {
      cell.append(el("div", "detail", "not in this run"));
      return cell;
    }
    cell.append(texts(s, reference), verdict(s));
    return cell;
  }

  function change(row) {
    const cell = el("td", "change");
    cell.append(el("span", "badge c-" + row.k.replace(" ", "-"), row.k));
    if (row.A && row.B && row.A.v !== undefined && row.B.v !== undefined) {
      const delta = row.B.v - row.A.v;
      cell.append(el("div", "score", (delta > 0 ? "+" : "") + delta.toFixed(2)), el("div", "detail", "B − A"));
    }
    return cell;
  }

  function sampleRow(row, number) {
    const tr = el("tr");
    tr.append(head(row, number));
    if (compare) {
      tr.append(sampleCell(row.A, row.r), sampleCell(row.B, row.r), change(row));
    } else {
      const text = el("td", "sample"), score = el("td", "outcome");
      text.append(texts(row, row.r));
      score.append(verdict(row));
      tr.append(text, score);
    }
    return tr;
  }

  // --- page --------------------------------------------------------------------------------------

  function button(text, page, enabled) {
    const b = el("button", null, text);
    b.disabled = !enabled;
    b.addEventListener("click", () => { state.page = page; render(); window.scrollTo(0, 0); });
    return b;
  }

  function render() {
    const found = selected();
    const pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
    state.page = Math.min(state.page, pages - 1);
    writeAddress();
    const start = state.page * PAGE_SIZE;
    const table = el("table", "samples");
    const header = el("tr");
    const columns = compare
      ? [["head", "sample"], ["sample", "A"], ["sample", "B"], ["change", "change"]]
      : [["head", "sample"], ["sample", "reference against hypothesis"], ["outcome", "score and status"]];
    for (const [className, title] of columns) header.append(el("th", className, title));
    table.append(header);
    found.slice(start, start + PAGE_SIZE).forEach((row, k) => table.append(sampleRow(row, start + k + 1)));
    document.getElementById("samples").replaceChildren(table);
    const pager = document.getElementById("pager");
    pager.replaceChildren(
      button("« first", 0, state.page > 0), button("‹ previous", state.page - 1, state.page > 0),
      el("span", "where", `page ${state.page + 1} of ${pages} · ${found.length} of ${rows.length} samples`),
      button("next ›", state.page + 1, state.page < pages - 1), button("last »", pages - 1, state.page < pages - 1));
  }

  readAddress();
  controls();
  render();
}

unpack(document.getElementById("view-data")).then(viewer, (error) => {
  document.getElementById("samples").textContent = "This browser could not unpack the samples: " + error;
});
