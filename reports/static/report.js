/* attreval run report: the per-sample drill-down (sort, filter, pages, mask overlays).
   Data arrive through script files beside the page (index per task, details in chunks), so the page
   opens from disk without a server. Every value is inserted as text (textContent), never as HTML. */
(function () {
  "use strict";

  const indexes = {};
  const chunks = {};
  const waiting = {};
  const GT_COLOUR = [0, 200, 83, 115];
  const PRED_COLOURS = [[235, 0, 90, 120], [41, 98, 255, 120], [255, 145, 0, 120], [170, 0, 255, 120]];
  const THUMB_SIDE = 320;

  window.attrevalIndex = function (data) { indexes[data.slug] = data; };
  window.attrevalChunk = function (slug, number, rows) {
    const key = slug + "/" + number;
    chunks[key] = rows;
    (waiting[key] || []).forEach(function (entry) { entry.resolve(rows); });
    delete waiting[key];
  };

  function loadChunk(index, number) {
    const key = index.slug + "/" + number;
    if (chunks[key]) { return Promise.resolve(chunks[key]); }
    return new Promise(function (resolve, reject) {
      const first = !waiting[key];
      (waiting[key] = waiting[key] || []).push({ resolve: resolve, reject: reject });
      if (!first) { return; }
      const script = document.createElement("script");
      script.src = index.chunk_prefix + String(number).padStart(5, "0") + ".js";
      script.onerror = function () {
        (waiting[key] || []).forEach(function (entry) { entry.reject(new Error("cannot load " + script.src)); });
        delete waiting[key];
      };
      document.head.appendChild(script);
    });
  }

  function detailOf(index, position) {
    const number = Math.floor(position / index.chunk_size);
    return loadChunk(index, number).then(function (rows) { return rows[position - number * index.chunk_size]; });
  }

  /* COCO compressed RLE (pycocotools rleFrString) -> run lengths, column-major, starting with background. */
  function rleCounts(text) {
    const counts = [];
    let position = 0;
    while (position < text.length) {
      let value = 0, shift = 0, more = 1;
      while (more) {
        const c = text.charCodeAt(position) - 48;
        value |= (c & 0x1f) << (5 * shift);
        more = c & 0x20;
        position += 1;
        shift += 1;
        if (!more && (c & 0x10)) { value |= -1 << (5 * shift); }
      }
      if (counts.length > 2) { value += counts[counts.length - 2]; }
      counts.push(value);
    }
    return counts;
  }

  function decodeMask(rle) {
    const height = rle.size[0], width = rle.size[1];
    const bits = new Uint8Array(height * width);
    let position = 0, on = false;
    for (const run of rleCounts(rle.counts)) {
      if (on && run > 0) { bits.fill(1, position, Math.min(position + run, bits.length)); }
      position += run;
      on = !on;
    }
    return { bits: bits, height: height, width: width };
  }

  /* Draw masks on a canvas at most `side` pixels wide or tall (the overlay is scaled by CSS):
     a translucent fill and an opaque outline, so both stay visible on busy images. */
  function paintMasks(canvas, masks, colours, side) {
    const context = canvas.getContext("2d");
    if (!masks.length) { canvas.width = 1; canvas.height = 1; context.clearRect(0, 0, 1, 1); return; }
    const height = masks[0].size[0], width = masks[0].size[1];
    if (!height || !width) { return; }
    const box = canvas.parentElement;
    if (box && box.classList.contains("blank")) { box.style.aspectRatio = width + " / " + height; }
    const scale = Math.min(1, side / Math.max(height, width));
    const outHeight = Math.max(1, Math.round(height * scale)), outWidth = Math.max(1, Math.round(width * scale));
    canvas.width = outWidth;
    canvas.height = outHeight;
    const image = context.createImageData(outWidth, outHeight);
    const on = new Uint8Array(outWidth * outHeight);
    masks.forEach(function (rle, number) {
      if (rle.size[0] !== height || rle.size[1] !== width) { return; }
      const mask = decodeMask(rle);
      const colour = colours[number % colours.length];
      for (let y = 0; y < outHeight; y += 1) {
        const sourceY = Math.min(height - 1, Math.floor(y / scale));
        for (let x = 0; x < outWidth; x += 1) {
          on[y * outWidth + x] = mask.bits[Math.min(width - 1, Math.floor(x / scale)) * height + sourceY];
        }
      }
      for (let y = 0; y < outHeight; y += 1) {
        for (let x = 0; x < outWidth; x += 1) {
          const here = y * outWidth + x;
          if (!on[here]) { continue; }
          const edge = x === 0 || y === 0 || x === outWidth - 1 || y === outHeight - 1 ||
            !on[here - 1] || !on[here + 1] || !on[here - outWidth] || !on[here + outWidth];
          const offset = here * 4;
          image.data[offset] = colour[0];
          image.data[offset + 1] = colour[1];
          image.data[offset + 2] = colour[2];
          image.data[offset + 3] = edge ? 255 : colour[3];
        }
      }
    });
    context.putImageData(image, 0, 0);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function formatValue(value) {
    if (value === null || value === undefined) { return ""; }
    return Number.isInteger(value) ? String(value) : value.toFixed(3);
  }

  function overlay(index, thumb, sizeClass) {
    const box = element("div", "overlay " + sizeClass);
    if (thumb) {
      const image = element("img");
      image.alt = "sample image";
      image.loading = "lazy";
      image.src = index.image_prefix + thumb;
      box.appendChild(image);
    } else {
      box.classList.add("blank");
      box.appendChild(element("span", "muted", "no image"));
    }
    const truth = element("canvas", "gt");
    const predicted = element("canvas", "pred");
    box.appendChild(truth);
    box.appendChild(predicted);
    return box;
  }

  class Drill {
    constructor(container, index) {
      this.container = container;
      this.index = index;
      this.count = index.index.length;
      this.state = { key: "worst", descending: false, page: 0, pageSize: 50, filter: "", failedOnly: false };
      this.open = new Set();
      this.columns = [["index", "#", "num"], ["id", "sample", ""]];
      if (index.has_images || index.has_masks) { this.columns.push(["image", "image", ""]); }
      this.columns.push(["prompt", "prompt", "text"], ["text", "model text", "text"], ["target", "target", "text"]);
      index.columns.forEach(function (name) { this.columns.push(["value:" + name, name, "num"]); }, this);
      this.columns.push(["error", "error", "err"]);
      this.build();
    }

    build() {
      const controls = element("div", "drill-controls");
      const search = element("input");
      search.type = "search";
      search.placeholder = "filter: id, prompt, text, error";
      search.setAttribute("aria-label", "filter samples");
      search.addEventListener("input", () => { this.state.filter = search.value.toLowerCase(); this.state.page = 0; this.render(); });
      const failed = element("label");
      const box = element("input");
      box.type = "checkbox";
      box.className = "failed-only";
      box.addEventListener("change", () => { this.state.failedOnly = box.checked; this.state.page = 0; this.render(); });
      failed.appendChild(box);
      failed.appendChild(document.createTextNode(" failed only"));
      const size = element("select");
      size.setAttribute("aria-label", "samples per page");
      [25, 50, 100, 250].forEach(function (value) {
        const option = element("option", null, value + " per page");
        option.value = String(value);
        option.selected = value === 50;
        size.appendChild(option);
      });
      size.addEventListener("change", () => { this.state.pageSize = Number(size.value); this.state.page = 0; this.render(); });
      const worst = element("button", "worst", "worst first");
      worst.type = "button";
      worst.addEventListener("click", () => { this.state.key = "worst"; this.state.descending = false; this.state.page = 0; this.render(); });
      this.pager = element("span", "pager");
      controls.append(search, failed, size, worst, this.pager);
      if (this.index.has_masks) {
        const legend = element("span", "legend");
        const truth = element("span");
        truth.append(swatch(GT_COLOUR), document.createTextNode("ground truth"));
        const predicted = element("span");
        predicted.append(swatch(PRED_COLOURS[0]), document.createTextNode("prediction"));
        legend.append(truth, predicted);
        controls.appendChild(legend);
      }
      this.table = element("table", "samples");
      const head = element("thead");
      const row = element("tr");
      this.headers = {};
      this.columns.forEach(([key, label, kind]) => {
        const cell = element("th", kind === "num" ? "num" : "");
        cell.dataset.key = key;
        if (key === "image") {
          cell.textContent = label;
        } else {
          const button = element("button", "sort", label);
          button.type = "button";
          button.addEventListener("click", () => this.sortBy(key));
          cell.appendChild(button);
        }
        this.headers[key] = cell;
        row.appendChild(cell);
      });
      head.appendChild(row);
      this.body = element("tbody");
      this.table.append(head, this.body);
      this.container.textContent = "";
      this.container.append(controls, this.table);
    }

    sortBy(key) {
      if (this.state.key === key) { this.state.descending = !this.state.descending; }
      else {
        /* a value column first sorts worst first: ascending when higher is better */
        this.state.key = key;
        this.state.descending = key.startsWith("value:") ? this.index.directions[key.slice(6)] === false : false;
      }
      this.state.page = 0;
      return this.render();
    }

    cell(position, key) {
      const index = this.index;
      if (key === "index") { return index.index[position]; }
      if (key === "id") { return index.id[position]; }
      if (key === "prompt") { return index.prompt[position]; }
      if (key === "text") { return index.text[position]; }
      if (key === "target") { return index.target[position]; }
      if (key === "error") { return index.error[position]; }
      if (key.startsWith("value:")) {
        const column = index.values[key.slice(6)];
        return column ? column[position] : null;
      }
      return null;
    }

    order() {
      const state = this.state;
      let positions;
      if (state.key === "worst") {
        positions = this.index.worst.slice();
        if (state.descending) { positions.reverse(); }
      } else {
        positions = Array.from({ length: this.count }, (_, i) => i);
        const numeric = state.key === "index" || state.key.startsWith("value:");
        const sign = state.descending ? -1 : 1;
        positions.sort((a, b) => {
          const left = this.cell(a, state.key), right = this.cell(b, state.key);
          const leftMissing = left === null || left === undefined || left === "";
          const rightMissing = right === null || right === undefined || right === "";
          if (leftMissing || rightMissing) { return leftMissing === rightMissing ? a - b : (leftMissing ? 1 : -1); }
          const compared = numeric ? left - right : String(left).localeCompare(String(right));
          return compared !== 0 ? sign * compared : a - b;
        });
      }
      return positions.filter((position) => {
        if (state.failedOnly && !this.index.error[position]) { return false; }
        if (!state.filter) { return true; }
        return ["id", "prompt", "text", "error", "target"].some((key) => {
          const value = this.cell(position, key);
          return value && String(value).toLowerCase().includes(state.filter);
        });
      });
    }

    render() {
      const state = this.state;
      const positions = this.order();
      const pages = Math.max(1, Math.ceil(positions.length / state.pageSize));
      state.page = Math.min(state.page, pages - 1);
      const shown = positions.slice(state.page * state.pageSize, (state.page + 1) * state.pageSize);
      Object.entries(this.headers).forEach(([key, cell]) => {
        if (key === state.key) { cell.setAttribute("aria-sort", state.descending ? "descending" : "ascending"); }
        else { cell.removeAttribute("aria-sort"); }
      });
      this.renderPager(pages, positions.length);
      this.body.textContent = "";
      const painting = [];
      shown.forEach((position) => {
        const row = element("tr", "sample" + (this.index.error[position] ? " failed" : ""));
        row.dataset.position = String(position);
        this.columns.forEach(([key, , kind]) => {
          const cell = element("td", kind);
          if (key === "image") {
            const box = overlay(this.index, this.index.thumb[position], "thumb");
            cell.appendChild(box);
            painting.push([position, box]);
          } else {
            const value = this.cell(position, key);
            cell.textContent = key.startsWith("value:") ? formatValue(value) : (value === null ? "" : String(value));
            if (kind === "text" || kind === "err") { cell.title = cell.textContent; }
          }
          row.appendChild(cell);
        });
        row.addEventListener("click", () => this.toggle(position, row));
        this.body.appendChild(row);
        if (this.open.has(position)) { this.showDetail(position, row); }
      });
      this.container.dataset.rendered = String(Number(this.container.dataset.rendered || 0) + 1);
      return Promise.all(painting.map(([position, box]) => detailOf(this.index, position).then((detail) => {
        paintMasks(box.querySelector("canvas.gt"), detail.gt, [GT_COLOUR], THUMB_SIDE / 2);
        paintMasks(box.querySelector("canvas.pred"), detail.pred, PRED_COLOURS, THUMB_SIDE / 2);
      })));
    }

    renderPager(pages, total) {
      const pager = this.pager;
      pager.textContent = "";
      const state = this.state;
      const go = (page) => { state.page = Math.max(0, Math.min(pages - 1, page)); this.render(); };
      const button = (label, page, disabled, name) => {
        const node = element("button", name, label);
        node.type = "button";
        node.disabled = disabled;
        node.addEventListener("click", () => go(page));
        return node;
      };
      pager.append(
        button("\u00ab", 0, state.page === 0, "first"),
        button("\u2039", state.page - 1, state.page === 0, "previous"),
        element("span", "position", " page " + (state.page + 1) + " of " + pages + " (" + total + " samples) "),
        button("\u203a", state.page + 1, state.page >= pages - 1, "next"),
        button("\u00bb", pages - 1, state.page >= pages - 1, "last"),
      );
    }

    toggle(position, row) {
      const next = row.nextElementSibling;
      if (next && next.classList.contains("detail")) {
        next.remove();
        this.open.delete(position);
        return;
      }
      this.open.add(position);
      this.showDetail(position, row);
    }

    showDetail(position, row) {
      const detailRow = element("tr", "detail");
      const cell = element("td");
      cell.colSpan = this.columns.length;
      cell.appendChild(element("span", "muted", "loading\u2026"));
      detailRow.appendChild(cell);
      row.after(detailRow);
      detailOf(this.index, position).then((detail) => {
        cell.textContent = "";
        const grid = element("div", "detail-grid");
        if (this.index.has_images || detail.gt.length || detail.pred.length) {
          const figure = element("div");
          const box = overlay(this.index, this.index.thumb[position], "large");
          figure.appendChild(box);
          paintMasks(box.querySelector("canvas.gt"), detail.gt, [GT_COLOUR], 4096);
          paintMasks(box.querySelector("canvas.pred"), detail.pred, PRED_COLOURS, 4096);
          const toggles = element("div");
          [["gt", "ground truth"], ["pred", "prediction"]].forEach(([name, label]) => {
            const control = element("label");
            const input = element("input");
            input.type = "checkbox";
            input.checked = true;
            input.addEventListener("change", () => { box.querySelector("canvas." + name).style.display = input.checked ? "" : "none"; });
            control.append(input, document.createTextNode(" " + label + " "));
            toggles.appendChild(control);
          });
          figure.appendChild(toggles);
          grid.appendChild(figure);
        } else {
          grid.appendChild(element("div"));
        }
        const text = element("div");
        const add = (label, value) => {
          text.appendChild(element("h3", null, label));
          text.appendChild(element("pre", null, value));
        };
        add("sample", this.index.id[position] + "  (index " + this.index.index[position] + ")");
        add("image", detail.image);
        add("prompt", detail.prompt);
        add("model text", detail.text);
        if (detail.phrases && detail.phrases.length) { add("phrases (phrase i \u2194 mask i)", detail.phrases.join("\n")); }
        add("target", detail.target);
        add("scores", detail.scores);
        if (this.index.error[position]) { add("error", this.index.error[position]); }
        grid.appendChild(text);
        cell.appendChild(grid);
      }, (error) => { cell.textContent = String(error); });
    }
  }

  function swatch(colour) {
    const node = element("span", "swatch");
    node.style.background = "rgba(" + colour[0] + "," + colour[1] + "," + colour[2] + "," + (colour[3] / 255) + ")";
    return node;
  }

  document.addEventListener("DOMContentLoaded", function () {
    const renders = [];
    document.querySelectorAll("div.drill[data-slug]").forEach(function (container) {
      const index = indexes[container.dataset.slug];
      if (!index) {
        container.textContent = "The per-sample data of this task could not be loaded (" + container.dataset.slug + ").";
        return;
      }
      const drill = new Drill(container, index);
      container.drill = drill;
      renders.push(drill.render());
    });
    Promise.allSettled(renders).then(function () { document.documentElement.dataset.ready = "true"; });
  });
})();
