from btkit.cli import main

main()
