from psp_sim.cli import main

main()
