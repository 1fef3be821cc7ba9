module github.com/calclab/calclab

go 1.26.8

require (
	github.com/casbin/govaluate v1.10.0 // indirect
	github.com/labstack/echo/v5 v5.4.4 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	go.etcd.io/bbolt v1.5.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
