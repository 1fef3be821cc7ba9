package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the master's and the slave's HTTP
// APIs, served by the master at GET /openapi.json. A test checks that it
// lists exactly the routes the services register.
//
//go:embed openapi.json
var OpenAPI []byte
