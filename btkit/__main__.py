from btkit.cli.main import main

main()
