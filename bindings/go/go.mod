module github.com/libmulticast/libmulticast/bindings/go

go 1.24
