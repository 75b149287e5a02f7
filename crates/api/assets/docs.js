// Renders /openapi.json as a readable page: every operation with its description (Markdown), a
// curl, its parameters, request body and responses with their examples, the webhook events, and
// the shared schemas. No framework, nothing fetched from elsewhere, and no HTML taken from the
// document: the small Markdown renderer below builds DOM nodes, so text is never markup.
(function () {
  "use strict";
  var root = document.getElementById("docs");
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.append(c); });
    return node;
  }

  // ---- Markdown: paragraphs, lists, fenced code, `code`, **strong**, *emphasis*, _emphasis_,
  // [links](url). As in CommonMark, a code span is never touched by the rest (it is set aside
  // before anything else is read), and `_` inside a word (CHECKOUT_RATE_LIMIT_PER_SECOND,
  // snake_case) is a plain underscore: `_` opens emphasis only after a non-word character and
  // closes it only before one.
  var CODE = /`([^`]+)`/g;
  var HELD = /\uE000(\d+)\uE001/g;
  var INLINE = new RegExp([
    "(\\*\\*[^*]+\\*\\*)",
    "(\\*[^*\\s][^*]*\\*|(?<![\\p{L}\\p{N}_])_(?=\\S).+?(?<=\\S)_(?![\\p{L}\\p{N}_]))",
    "(\\[[^\\]]+\\]\\([^)\\s]+\\))"
  ].join("|"), "u");
  function inline(text) {
    var codes = [];
    var held = String(text).replace(/[\uE000\uE001]/g, "").replace(CODE, function (_, code) {
      codes.push(code);
      return "\uE000" + (codes.length - 1) + "\uE001";
    });
    return spans(held, codes);
  }
  // Text with its code spans held aside as \uE000<n>\uE001: the spans put back as <code>.
  function plain(text, codes) {
    return text.split(HELD).map(function (part, i) {
      return i % 2 ? el("code", {}, [codes[Number(part)]]) : part;
    }).filter(function (part) { return part !== ""; });
  }
  function spans(text, codes) {
    var nodes = [];
    while (text.length) {
      var match = INLINE.exec(text);
      if (!match) { nodes.push.apply(nodes, plain(text, codes)); break; }
      if (match.index > 0) nodes.push.apply(nodes, plain(text.slice(0, match.index), codes));
      var token = match[0];
      if (match[1]) nodes.push(el("strong", {}, spans(token.slice(2, -2), codes)));
      else if (match[2]) nodes.push(el("em", {}, spans(token.slice(1, -1), codes)));
      else {
        var label = token.slice(1, token.indexOf("]("));
        var href = token.slice(token.indexOf("](") + 2, -1).replace(HELD, function (_, n) { return "`" + codes[Number(n)] + "`"; });
        // Only web and same-site links: a document cannot smuggle a javascript: URL in.
        nodes.push.apply(nodes, /^(https?:\/\/|\/|#)/.test(href) ? [el("a", { href: href }, spans(label, codes))] : spans(label, codes));
      }
      text = text.slice(match.index + token.length);
    }
    return nodes;
  }
  function markdown(text) {
    var blocks = [];
    var lines = String(text || "").split("\n");
    var paragraph = [];
    var list = null;
    function flush() {
      if (paragraph.length) blocks.push(el("p", {}, inline(paragraph.join(" "))));
      paragraph = [];
      list = null;
    }
    for (var i = 0; i < lines.length; i++) {
      var line = lines[i];
      if (/^```/.test(line.trim())) {
        flush();
        var code = [];
        for (i++; i < lines.length && !/^```/.test(lines[i].trim()); i++) code.push(lines[i]);
        blocks.push(el("pre", {}, [el("code", {}, [code.join("\n")])]));
      } else if (/^\s*[-*] /.test(line)) {
        if (paragraph.length) flush();
        if (!list) { list = el("ul"); blocks.push(list); }
        list.append(el("li", {}, inline(line.replace(/^\s*[-*] /, ""))));
      } else if (/^#{1,4} /.test(line)) {
        flush();
        blocks.push(el("h3", {}, inline(line.replace(/^#+ /, ""))));
      } else if (!line.trim()) {
        flush();
      } else if (list && /^\s+/.test(line)) {
        list.lastChild.append(" ", ...inline(line.trim()));
      } else {
        list = null;
        paragraph.push(line.trim());
      }
    }
    flush();
    return el("div", { "class": "markdown" }, blocks);
  }

  function resolve(spec, node) {
    if (node && node.$ref) {
      return resolve(spec, node.$ref.replace(/^#\//, "").split("/").reduce(function (o, k) { return o && o[k]; }, spec));
    }
    return node;
  }
  function json(value) { return el("pre", {}, [el("code", {}, [JSON.stringify(value, null, 2)])]); }
  function schemaBlock(spec, schema) {
    return el("details", {}, [el("summary", {}, ["Schema"]), json(resolve(spec, schema))]);
  }
  function examplesOf(spec, media) {
    var shown = [];
    if (media.example !== undefined) shown.push(el("details", { open: "" }, [el("summary", {}, ["Example"]), json(media.example)]));
    Object.keys(media.examples || {}).forEach(function (name) {
      var example = resolve(spec, media.examples[name]);
      shown.push(el("details", { open: "" }, [
        el("summary", {}, ["Example: " + (example.summary || name)]), json(example.value)
      ]));
    });
    return shown;
  }
  function content(spec, section, body) {
    Object.keys(body.content || {}).forEach(function (type) {
      var media = body.content[type];
      section.append(el("p", {}, [el("code", {}, [type])]), schemaBlock(spec, media.schema));
      examplesOf(spec, media).forEach(function (e) { section.append(e); });
    });
  }
  function operation(spec, method, path, op) {
    var section = el("section", { "class": "panel op", id: op.operationId || (method + path) }, [
      el("h2", {}, [el("span", { "class": "method " + method }, [method.toUpperCase()]), " ", el("code", {}, [path])]),
      markdown(op.description)
    ]);
    // The samples are written for a local server; shown for the one that serves this page.
    var server = ((spec.servers || [])[0] || {}).url || "http://localhost:4805";
    (op["x-codeSamples"] || []).forEach(function (sample) {
      var source = sample.source.split("http://localhost:4805").join(server);
      section.append(el("h3", {}, [sample.label || sample.lang]), el("pre", {}, [el("code", {}, [source])]));
    });
    (op.parameters || []).map(function (p) { return resolve(spec, p); }).forEach(function (p) {
      section.append(el("div", { "class": "param" }, [
        el("p", {}, [el("code", {}, [p.name]), " (" + p.in + (p.required ? ", required" : "") + ")"]),
        markdown(p.description)
      ]));
    });
    if (op.requestBody) {
      section.append(el("h3", {}, ["Request body"]));
      content(spec, section, resolve(spec, op.requestBody));
    }
    section.append(el("h3", {}, ["Responses"]));
    Object.keys(op.responses || {}).forEach(function (code) {
      var response = resolve(spec, op.responses[code]);
      section.append(el("h4", {}, [code]), markdown(response.description));
      content(spec, section, response);
    });
    return section;
  }
  function operations(spec, items, heading) {
    if (!items || !Object.keys(items).length) return;
    root.append(el("h2", { "class": "section" }, [heading]));
    Object.keys(items).forEach(function (path) {
      Object.keys(items[path]).forEach(function (method) {
        root.append(operation(spec, method, path, items[path][method]));
      });
    });
  }

  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (spec) {
    document.title = spec.info.title;
    root.append(el("h1", {}, [spec.info.title + " " + spec.info.version]));
    root.append(markdown(spec.info.description));
    root.append(el("p", { "class": "hint" }, ["Servers: " + (spec.servers || []).map(function (s) { return s.url; }).join(", ")]));
    operations(spec, spec.paths, "Endpoints");
    operations(spec, spec.webhooks, "Webhook events (sent to your endpoint)");
    var schemas = (spec.components || {}).schemas || {};
    root.append(el("h2", { "class": "section" }, ["Schemas"]));
    Object.keys(schemas).forEach(function (name) {
      root.append(el("section", { "class": "panel", id: "schema-" + name }, [
        el("h3", {}, [name]), markdown(schemas[name].description), json(schemas[name])
      ]));
    });
  }).catch(function (error) {
    root.append(el("p", { "class": "alert", role: "alert" }, ["Could not load the API document: " + error]));
  });
})();
