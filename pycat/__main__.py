from pycat.cli import main

main()
