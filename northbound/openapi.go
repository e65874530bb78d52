package northbound

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDoc is the OpenAPI 3.0 document of every route dvrflowd serves: this API's
// (its test fails when a route registered here is missing from it or the other way
// round) and those dvrflowd mounts around it, marked "x-dvrflow-mounted-by": "dvrflowd"
// (the switch API, /status, /metrics).
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.0 document of the API (JSON). The caller must not
// modify it.
func OpenAPI() []byte { return openAPIDoc }

// openAPI serves the document, without a token, at /openapi.json and /v2.0/openapi.json.
func (s *Server) openAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}
