// Starts the vendored Swagger UI on the API's own OpenAPI document (see api/templates/docs.html).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    dom_id: "#swagger-ui",
    deepLinking: true,
    // "Authorize": enter the whole header value, "APIToken <token>"
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
