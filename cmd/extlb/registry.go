package main

import (
	"github.com/spf13/cobra"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/aws"
	"github.com/extlb/extlb/providers/fake"
	"github.com/extlb/extlb/providers/gce"
	"github.com/extlb/extlb/providers/metal"
)

// defaultRegistry is the explicit list of providers --provider chooses
// from, each under its package's own Name.
func defaultRegistry() providers.Registry {
	return providers.Registry{
		fake.Name:  fake.NewBuilder(),
		aws.Name:   aws.NewBuilder(),
		gce.Name:   gce.NewBuilder(),
		metal.Name: metal.NewBuilder(),
	}
}

// extraCommands are the subcommands besides controller.
func extraCommands() []*cobra.Command {
	return []*cobra.Command{
		newFakeCommand(),
	}
}
