package main

import "github.com/enclave-go/enclave/workerproc"

func runWorker() int { return workerproc.Main() }
