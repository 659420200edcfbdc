// Swagger UI's start, in a file of its own so that the page's Content-Security-Policy can
// allow scripts from this server only ('self', no inline script). Relative URLs: the page
// works under any root path. No validator badge: it would load an image from elsewhere.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
