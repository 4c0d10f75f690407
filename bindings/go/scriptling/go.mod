module github.com/libmulticast/libmulticast/bindings/go/scriptling

go 1.26.1

require (
	github.com/libmulticast/libmulticast/bindings/go v0.1.0
	github.com/paularlott/scriptling v0.20.1
	golang.org/x/net v0.57.0
)

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/gorilla/websocket v1.5.3 // indirect
	github.com/paularlott/gossip v0.20.0 // indirect
	github.com/paularlott/logger v0.3.0 // indirect
	github.com/paularlott/snapshotkv v0.5.0 // indirect
	github.com/shamaton/msgpack/v3 v3.2.0 // indirect
	github.com/shirou/gopsutil/v3 v3.24.5 // indirect
	github.com/tklauser/go-sysconf v0.4.0 // indirect
	github.com/tklauser/numcpus v0.12.0 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	github.com/yuin/goldmark v1.8.4 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
)
