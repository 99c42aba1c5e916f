# Builds the sessionctx binary and runs it as a non-root user.
#   docker build -t sessionctx .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sessionctx ./cmd/sessionctx

# Alpine rather than distroless so that busybox wget can serve as the health check.
FROM alpine:3
RUN apk add --no-cache ca-certificates tzdata \
	&& adduser -D -H -u 10001 sessionctx
COPY --from=build /out/sessionctx /usr/local/bin/sessionctx
USER 10001:10001
ENV SESSIONCTX_HTTP_ADDR=:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
	CMD wget -q -O /dev/null http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/sessionctx"]
