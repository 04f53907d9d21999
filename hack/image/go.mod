// Module image writes the controller image tarball for `make image` with
// go-containerregistry, without Docker. It is a module of its own so the
// controller's go.mod stays free of go-containerregistry.
module github.com/stageset/stageset-controller/hack/image

go 1.27.0

require (
	github.com/google/go-containerregistry v0.22.1
	golang.org/x/crypto/x509roots/fallback v0.0.0-20261030153154-30a33513ff6d
)

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
