package deps

import (
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/credentials"
	_ "github.com/aws/aws-sdk-go-v2/service/s3"
	_ "github.com/docker/docker/client"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/rs/zerolog"
)
