package master

import (
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/calclab/calclab/services/api"
)

func serveOpenAPI(c *echo.Context) error {
	return c.Blob(http.StatusOK, "application/json", api.OpenAPI)
}
