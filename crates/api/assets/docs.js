// Renders /openapi.json as a readable page: every operation with its parameters, request body and
// responses, and the shared schemas. No framework, nothing fetched from elsewhere.
(function () {
  "use strict";
  var root = document.getElementById("docs");
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.append(c); });
    return node;
  }
  function resolve(spec, schema) {
    if (schema && schema.$ref) {
      return schema.$ref.replace(/^#\//, "").split("/").reduce(function (o, k) { return o && o[k]; }, spec);
    }
    return schema;
  }
  function schemaBlock(spec, schema) {
    var shown = JSON.stringify(resolve(spec, schema), null, 2);
    return el("details", {}, [el("summary", {}, ["Schema"]), el("pre", {}, [shown])]);
  }
  fetch("/openapi.json").then(function (r) { return r.json(); }).then(function (spec) {
    document.title = spec.info.title;
    root.append(el("h1", {}, [spec.info.title + " " + spec.info.version]));
    root.append(el("p", {}, [spec.info.description || ""]));
    root.append(el("p", { "class": "hint" }, ["Servers: " + (spec.servers || []).map(function (s) { return s.url; }).join(", ")]));
    Object.keys(spec.paths).forEach(function (path) {
      Object.keys(spec.paths[path]).forEach(function (method) {
        var op = spec.paths[path][method];
        var section = el("section", { "class": "panel op", id: op.operationId || (method + path) }, [
          el("h2", {}, [el("span", { "class": "method " + method }, [method.toUpperCase()]), " ", el("code", {}, [path])]),
          el("p", {}, [op.description || ""])
        ]);
        (op.parameters || []).map(function (p) { return resolve(spec, p); }).forEach(function (p) {
          section.append(el("p", {}, [el("code", {}, [p.name]), " (" + p.in + (p.required ? ", required" : "") + ")"]));
        });
        if (op.requestBody) {
          var body = resolve(spec, op.requestBody);
          section.append(el("h3", {}, ["Request body"]));
          Object.keys(body.content || {}).forEach(function (type) {
            section.append(el("p", {}, [el("code", {}, [type])]), schemaBlock(spec, body.content[type].schema));
          });
        }
        section.append(el("h3", {}, ["Responses"]));
        Object.keys(op.responses).forEach(function (code) {
          var response = resolve(spec, op.responses[code]);
          section.append(el("h4", {}, [code + " ", el("span", { "class": "muted" }, [response.description || ""])]));
          Object.keys(response.content || {}).forEach(function (type) {
            section.append(schemaBlock(spec, response.content[type].schema));
          });
        });
        root.append(section);
      });
    });
  }).catch(function (error) {
    root.append(el("p", { "class": "alert", role: "alert" }, ["Could not load the API document: " + error]));
  });
})();
